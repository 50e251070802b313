"""What a run will do, in index order: videos first (probed up front), then images, lazily.

Every item gets its global index here. Videos are probed before dispatch starts, since
the collector needs their index ranges; images are enumerated lazily while the run
goes on, so the first units are processed while a huge listing is still being read.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from .._config import RunConfig
from .._errors import InputError
from ..sources import ImageRef, VideoInfo, iter_images, plan_segments, probe
from ..sources._glob import has_magic, iter_glob
from ..storage import Location
from ._work import ErrorItem, ImageUnit, UnitSize, VideoUnit, WorkItem

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlannedVideo:
    """One input video: its frames have indices ``base_index ..``; ``info`` is None when
    the video cannot be read, and then it is one error row at ``base_index``."""

    location: Location
    base_index: int
    info: VideoInfo | None = None
    error: str | None = None

    def __post_init__(self) -> None:
        if (self.info is None) == (self.error is None):
            raise ValueError(f"{self.source}: give exactly one of info or error")

    @property
    def source(self) -> str:
        """The video's path or URI, as rows name it."""
        return self.location.uri

    @property
    def end_index(self) -> int:
        return self.base_index + (self.info.frame_count if self.info is not None else 1)


@dataclass(frozen=True)
class VideoPlan:
    """The input videos in config order; images are numbered from ``first_image_index``."""

    videos: tuple[PlannedVideo, ...]

    @property
    def first_image_index(self) -> int:
        return self.videos[-1].end_index if self.videos else 0

    @property
    def readable(self) -> tuple[PlannedVideo, ...]:
        return tuple(v for v in self.videos if v.info is not None)


def video_locations(config: RunConfig) -> list[Location]:
    """The video files of the config, globs expanded (in key order), in config order."""
    found: list[Location] = []
    for spec in config.locations.videos:
        if has_magic(spec.path):
            found.extend(Location(spec.fs, path) for path, _ in iter_glob(spec.fs, spec.path))
        else:
            found.append(spec)
    return found


def plan_videos(config: RunConfig) -> VideoPlan:
    videos = []
    index = 0
    for location in video_locations(config):
        try:
            video = PlannedVideo(location, index, info=probe(location))
        except InputError as exc:
            video = PlannedVideo(location, index, error=str(exc))
        videos.append(video)
        index = video.end_index
    return VideoPlan(tuple(videos))


class Enumeration:
    """Work units in index order, lazily, skipping committed indices.

    Yields ``WorkUnit`` objects, or an ``ErrorItem`` for an input known bad before
    any actor sees it. ``total`` is the number of indices, known once iteration ends.
    """

    def __init__(
        self, config: RunConfig, plan: VideoPlan, resume_from: int, size: UnitSize
    ) -> None:
        self.config = config
        self.plan = plan
        self.resume_from = resume_from
        self.size = size
        self.total: int | None = None

    def __iter__(self) -> Iterator[WorkItem]:
        config, resume_from = self.config, self.resume_from
        unit_ids = itertools.count()
        for video_id, video in enumerate(self.plan.videos):
            if video.info is None:
                if video.base_index >= resume_from:
                    yield ErrorItem(video.base_index, video.source, video.error or "")
                continue
            for segment in plan_segments(video.info, config.input.video_segment_frames):
                if video.base_index + segment.end_frame > resume_from:
                    yield VideoUnit(
                        next(unit_ids),
                        video.location,
                        video.source,
                        segment,
                        video.base_index,
                        video_id,
                    )
        index = self.plan.first_image_index
        batch: list[tuple[int, ImageRef]] = []
        for spec in config.locations.images:
            refs = iter_images(
                spec,
                max_inline_bytes=config.input.max_file_bytes,
                options=config.storage.options(),
            )
            for ref in refs:
                if index >= resume_from:
                    batch.append((index, ref))
                    if len(batch) >= self.size.value:
                        yield ImageUnit(next(unit_ids), tuple(batch))
                        batch = []
                index += 1
        if batch:
            yield ImageUnit(next(unit_ids), tuple(batch))
        self.total = index


class TotalCount:
    """The number of items, counted on a thread of its own while dispatch goes on.

    Enumeration stays lazy (the first units go out while a huge listing is still
    being read); this second pass over the same inputs only counts, so that the
    progress can show a total and an ETA long before the run ends. The driver starts
    it once the first results are in: until then the listing that feeds the first
    units has the store (and the GIL) to itself. ``total`` is
    None until the count is done, and stays None if the inputs cannot be counted
    (the enumeration reports why).
    """

    def __init__(self, config: RunConfig, plan: VideoPlan) -> None:
        self.total: int | None = None
        self._thread = threading.Thread(
            target=self._count, args=(config, plan), name="distinfer-count", daemon=True
        )

    def start(self) -> TotalCount:
        """Start counting, once (later calls do nothing)."""
        if self._thread.ident is None:
            self._thread.start()
        return self

    def _count(self, config: RunConfig, plan: VideoPlan) -> None:
        count = plan.first_image_index
        try:
            for spec in config.locations.images:
                refs = iter_images(
                    spec,
                    max_inline_bytes=config.input.max_file_bytes,
                    options=config.storage.options(),
                )
                count += sum(1 for _ in refs)
        except Exception:  # the enumeration itself raises it, where it matters
            logger.debug("cannot count the inputs ahead", exc_info=True)
            return
        self.total = count
