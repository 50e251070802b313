"""The ordered collector: results from every actor in, index order out.

A Ray actor (one per job). Actors send it one ``ResultBatch`` per unit of work,
directly; it keeps a bounded reorder buffer of whole batches, drops duplicate
rows (work retried after a failure), streams the in-order batches to the
Parquet sink and the frame rows of videos to the annotated-video writer. After
a restart it resumes at the manifest's ``committed_until``; its new ``epoch``
tells the driver to resend the rest.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..engine._arrow import predictions_from_records
from ..engine._overlay import draw_prediction
from ..engine._prediction import Prediction
from ..sinks import VideoSink
from ..sinks._parquet import ParquetSink
from ..sources import probe, read_segment, whole_video
from ..storage import Location, staged
from ._metrics import CollectorMetrics, RunGauges
from ._rows import ResultBatch
from ._startup import warm_up
from ._work import CollectorStatus

logger = logging.getLogger(__name__)

_END = None
#: A frame for the video writer: its index, and its prediction (None: the row has an error).
Frame = tuple[int, Prediction | None]


@dataclass(frozen=True)
class VideoOutput:
    """Write ``source`` with overlays to ``target``; its frame n has index ``base_index + n``.

    On object storage the video is encoded to a local temporary file, then uploaded:
    it appears whole or not at all."""

    source: Location
    target: Location
    base_index: int
    frame_count: int


class _VideoWriter:
    """Decodes each source video in order, draws its frames' predictions, encodes; on its
    own thread."""

    def __init__(
        self,
        outputs: Sequence[VideoOutput],
        max_queued_rows: int,
        fence: Callable[[], None] | None = None,
    ) -> None:
        self.outputs = sorted(outputs, key=lambda o: o.base_index)
        self.fence = fence
        self.rows: queue.Queue[Frame | None] = queue.Queue(max_queued_rows)
        self.error: BaseException | None = None
        self.frames_written = 0
        self._thread = threading.Thread(
            target=self._run, name="distinfer-video-writer", daemon=True
        )
        self._thread.start()

    def feed(self, frame: Frame) -> None:
        self.rows.put(frame)

    def close(self) -> None:
        self.rows.put(_END)
        self._thread.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            for out in self.outputs:
                self._write_one(out)
        except BaseException as exc:
            logger.exception("annotated video failed")
            self.error = exc
        while self.rows.get() is not _END:  # keep the collector unblocked
            pass

    def _write_one(self, out: VideoOutput) -> None:
        info = probe(out.source)
        frames = read_segment(out.source, whole_video(info))
        # the run was cleared to write here (prepare_output); replace an older file
        size = (info.width, info.height)
        with staged(out.target) as path, VideoSink(path, info.fps, size, overwrite=True) as sink:
            for _ in range(out.frame_count):
                row = self.rows.get()
                if row is _END:
                    raise RuntimeError("video rows ended early")
                index, prediction = row
                image = _next_frame(frames, index - out.base_index)
                if image is None:
                    continue  # the source cannot be decoded here either; row has the error
                if prediction is not None:
                    image = draw_prediction(image, prediction, copy=False)
                sink.write(image)
                self.frames_written += 1
            if self.fence is not None:
                self.fence()  # this run still owns the output: the video may be published


def _next_frame(frames: Any, number: int) -> np.ndarray | None:
    for n, image in frames:
        if n == number:
            return np.ascontiguousarray(image)
        if n > number:
            return None
    return None


class OrderedCollector:
    """Reorders result batches by index and writes each row once. Run as a Ray actor.

    Each batch covers a contiguous index range (see ``_rows``), so the reorder
    buffer holds whole batches keyed by their first index: a batch is written
    when the rows before it are. Rows below ``next_index`` were written
    already (work retried after a failure, or delivered again after a restart):
    a batch that overlaps them is cut, one wholly below is dropped.
    """

    def __init__(
        self,
        parquet: Location | str,
        fingerprint: str,
        *,
        rows_per_part: int,
        flush_interval_s: float,
        videos: Sequence[VideoOutput] = (),
        fence: Callable[[], None] | None = None,
    ) -> None:
        warm_up()  # now, while the inference actors start, not on the first batch
        self.epoch = uuid.uuid4().hex
        self.sink = ParquetSink(
            parquet, fingerprint=fingerprint, rows_per_part=rows_per_part, fence=fence
        )
        self.flush_interval_s = flush_interval_s
        self.next_index = self.sink.committed_until
        self.buffer: dict[int, ResultBatch] = {}  # by first index
        self._firsts: list[int] = []  # heap of the buffer's keys
        self.buffered_rows = 0
        self.duplicates = 0
        self.max_buffered = 0  # rows
        self._last_commit = time.monotonic()
        self._metrics: CollectorMetrics | None = None  # made by the first ``report``
        self.video = _VideoWriter(videos, max_queued_rows=256, fence=fence) if videos else None
        self.first_image_index = max((v.base_index + v.frame_count for v in videos), default=0)
        if self.video is not None and self.next_index > 0:
            self._replay_committed_frames()

    def _replay_committed_frames(self) -> None:
        """After a restart, feed the video writer the frame rows committed before."""
        assert self.video is not None
        for part in self.sink.manifest["parts"]:
            if part["first"] >= self.first_image_index:
                break  # videos come first; the rest are images
            table = self.sink.read_part(part)
            for batch in table.to_batches():
                self._feed_frames(batch)

    def add(self, batch: ResultBatch) -> tuple[str, int]:
        """Take one unit's rows, in any order of units; return ``(epoch, committed_until)``.

        >>> collector.add(ResultBatch.from_rows(rows))   # doctest: +SKIP
        ('5f0c...', 0)
        """
        self._buffer(batch)
        self.max_buffered = max(self.max_buffered, self.buffered_rows)
        ready = self._drain()
        if ready:
            before = self.sink.committed_until
            for done in ready:
                self.sink.write(done.records)
            if self.sink.committed_until != before:
                self._last_commit = time.monotonic()
            if self.video is not None:
                self._feed_video(ready)
        if time.monotonic() - self._last_commit > self.flush_interval_s:
            self.sink.flush()
            self._last_commit = time.monotonic()
        return self.epoch, self.sink.committed_until

    def _buffer(self, batch: ResultBatch) -> None:
        if batch.end <= self.next_index:
            self.duplicates += len(batch)
            return
        if batch.first < self.next_index:
            self.duplicates += self.next_index - batch.first
            batch = batch.since(self.next_index)
        held = self.buffer.get(batch.first)
        if held is None:
            heapq.heappush(self._firsts, batch.first)
        elif len(held) >= len(batch):
            self.duplicates += len(batch)
            return
        else:  # keep the longer of two batches from the same index; the shorter is in it
            self.duplicates += len(held)
            self.buffered_rows -= len(held)
        self.buffer[batch.first] = batch
        self.buffered_rows += len(batch)

    def _drain(self) -> list[ResultBatch]:
        """Take the batches that continue ``next_index``, in order; drop what falls below it."""
        ready = []
        while self._firsts and self._firsts[0] <= self.next_index:
            batch = self.buffer.pop(heapq.heappop(self._firsts))
            self.buffered_rows -= len(batch)
            if batch.end <= self.next_index:  # e.g. a split-off item inside a batch just taken
                self.duplicates += len(batch)
                continue
            if batch.first < self.next_index:
                self.duplicates += self.next_index - batch.first
                batch = batch.since(self.next_index)
            ready.append(batch)
            self.next_index = batch.end
        return ready

    def _feed_video(self, ready: Sequence[ResultBatch]) -> None:
        for batch in ready:
            if batch.first >= self.first_image_index:
                break  # videos come first; the rest are images
            self._feed_frames(batch.records)

    def _feed_frames(self, records: pa.RecordBatch) -> None:
        """The frame rows of ``records``, read from their columns, to the video writer."""
        assert self.video is not None
        frames = records.filter(pc.is_valid(records.column("frame")))
        indices = frames.column("index").to_pylist()
        for index, prediction in zip(indices, predictions_from_records(frames), strict=True):
            self.video.feed((index, prediction))

    def flush(self) -> tuple[str, int]:
        """Commit every row that is in order; return ``(epoch, committed_until)``."""
        self.sink.flush()
        self._last_commit = time.monotonic()
        return self.epoch, self.sink.committed_until

    def status(self) -> CollectorStatus:
        return CollectorStatus(
            epoch=self.epoch,
            committed_until=self.sink.committed_until,
            next_index=self.next_index,
            buffered=self.buffered_rows,
            max_buffered=self.max_buffered,
            duplicates=self.duplicates,
        )

    def report(self, run: str, gauges: RunGauges) -> None:
        """Export the run's gauges and this collector's own (``cluster.metrics``)."""
        if self._metrics is None:
            self._metrics = CollectorMetrics(run)
        self._metrics.update(
            gauges, committed=self.sink.committed_until, buffered_rows=self.buffered_rows
        )

    def finish(self, total: int, stats: Mapping[str, Any]) -> dict[str, Any]:
        """Commit the rest, close the video, mark the manifest finished."""
        if self.video is not None:
            self.video.close()
        return self.sink.finish(total, {**stats, "collector": dataclasses.asdict(self.status())})

    def pid(self) -> int:
        import os

        return os.getpid()
