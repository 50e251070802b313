"""Units of work the driver sends to inference actors, and what comes back.

Every unit covers a contiguous range of indices, ``first_index`` up to
``first_index + len(unit)``: the collector relies on it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from ..sources import ImageRef, VideoSegment
from ..storage import Location


@dataclass(frozen=True)
class ImageUnit:
    """Still images with consecutive global indices: references, never pixels.

    Consecutive because the collector takes a unit's rows as one contiguous
    batch (see ``_rows``).
    """

    unit_id: int
    items: tuple[tuple[int, ImageRef], ...]

    def __post_init__(self) -> None:
        if not self.items:
            raise ValueError("an ImageUnit needs at least one item")
        first = self.items[0][0]
        indices = [index for index, _ in self.items]
        if indices != list(range(first, first + len(indices))):
            raise ValueError(f"an ImageUnit needs consecutive indices, got {indices[:8]}")

    @property
    def indices(self) -> Iterator[int]:
        return (index for index, _ in self.items)

    @property
    def first_index(self) -> int:
        return self.items[0][0]

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class VideoUnit:
    """A run of frames of one video; frame ``n`` of the segment has index ``base_index + n``."""

    unit_id: int
    location: Location
    source: str
    segment: VideoSegment
    base_index: int
    video_id: int

    @property
    def indices(self) -> Iterator[int]:
        return iter(range(self.first_index, self.base_index + self.segment.end_frame))

    @property
    def first_index(self) -> int:
        return self.base_index + self.segment.start_frame

    def __len__(self) -> int:
        return self.segment.end_frame - self.segment.start_frame


WorkUnit = ImageUnit | VideoUnit


@dataclass(frozen=True)
class UnitDone:
    """An actor's answer for one unit: its rows are already with the collector.

    ``collector_epoch`` names the collector instance that took the rows, and
    ``committed_until`` is what it had committed then: the driver needs both to
    resend what a collector restart lost. ``logs`` are the actor's distinfer log
    records since its last answer, for the driver's console.
    """

    unit_id: int
    node: str
    items: int
    errors: int
    busy_s: float
    collector_epoch: str
    committed_until: int = 0
    error_samples: tuple[str, ...] = ()
    logs: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class ErrorItem:
    """An item known bad before any actor sees it (a video that cannot be opened):
    the driver writes its error row itself."""

    index: int
    source: str
    error: str
    frame: int | None = None


#: What enumeration yields, in index order.
WorkItem = WorkUnit | ErrorItem


@dataclass(frozen=True)
class CollectorStatus:
    """Where the collector stands: what the driver needs to keep the output exactly-once.

    ``epoch`` names the collector instance (a restart makes a new one);
    ``committed_until`` is the end of the committed rows, ``next_index`` the end of the
    rows taken in order (committed or pending), ``buffered`` the rows held out of order
    (``max_buffered``: the most at once), ``duplicates`` the rows dropped as already taken.
    """

    epoch: str
    committed_until: int
    next_index: int
    buffered: int
    max_buffered: int
    duplicates: int


#: ``items_per_unit: auto``: units start at this many images ...
AUTO_MIN_ITEMS = 8
#: ... and grow up to this many, ...
AUTO_MAX_ITEMS = 256
#: ... so that a unit holds about this much of one actor's work.
AUTO_UNIT_S = 0.25
#: The rate is measured over the acknowledgements of about this long.
AUTO_WINDOW_S = 2.0


class UnitSize:
    """How many images the next unit holds: fixed, or ``auto``.

    ``auto`` keeps a unit at about ``AUTO_UNIT_S`` of an actor's work, measured
    as the run goes: a large model stays at a few images a unit (first results
    come soon, a retry costs little), a small one grows to hundreds, so that
    Ray's per-call cost and the collector's per-batch cost stay small next to
    the model's. Never beyond what the reorder window holds for every unit in
    flight, so the window never stalls the dispatch.

    >>> size = UnitSize("auto", actors=1, units_in_flight=4, window_items=4096)
    >>> size.value
    8
    >>> for t in range(5):
    ...     size.observe(float(t), 1000 * t)    # 1,000 items/s
    >>> size.value                              # 0.25 s of 1,000 items/s
    248
    """

    def __init__(
        self, setting: int | str, *, actors: int, units_in_flight: int, window_items: int
    ) -> None:
        self.fixed = setting if isinstance(setting, int) else None
        self.value = self.fixed or AUTO_MIN_ITEMS
        self.units_in_flight = units_in_flight
        self.window_items = window_items
        self.set_actors(actors)
        self.acks: deque[tuple[float, int]] = deque()

    def set_actors(self, actors: int) -> None:
        """The number of actors working now (nodes join and leave)."""
        self.actors = max(1, actors)
        self.ceiling = max(
            AUTO_MIN_ITEMS,
            min(AUTO_MAX_ITEMS, self.window_items // (self.actors * self.units_in_flight)),
        )

    def observe(self, now: float, processed: int) -> None:
        """Note that ``processed`` items were done by ``now`` (seconds, monotonic)."""
        if self.fixed is not None:
            return
        self.acks.append((now, processed))
        while len(self.acks) > 2 and now - self.acks[1][0] >= AUTO_WINDOW_S:
            self.acks.popleft()
        (t0, n0), (t1, n1) = self.acks[0], self.acks[-1]
        if t1 - t0 < AUTO_UNIT_S:
            return
        per_actor = (n1 - n0) / (t1 - t0) / self.actors
        wanted = int(per_actor * AUTO_UNIT_S) // AUTO_MIN_ITEMS * AUTO_MIN_ITEMS
        self.value = min(self.ceiling, max(AUTO_MIN_ITEMS, wanted))
