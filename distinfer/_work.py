"""Units of work the driver sends to inference actors, and what comes back.

Every unit covers a contiguous range of indices, ``first_index`` up to
``first_index + len(unit)``: the collector relies on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .sources import ImageRef, VideoSegment


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
    path: str
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
    resend what a collector restart lost.
    """

    unit_id: int
    node: str
    items: int
    errors: int
    busy_s: float
    collector_epoch: str
    committed_until: int = 0
    error_samples: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
