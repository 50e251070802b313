"""The ordered collector: results from every actor in, index order out.

A Ray actor (one per job). Actors send it rows directly; it keeps a bounded
reorder buffer, drops duplicates (work retried after a failure), streams the
in-order rows to the Parquet sink and the frame rows of videos to the
annotated-video writer. After a restart it resumes at the manifest's
``committed_until``; its new ``epoch`` tells the driver to resend the rest.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from ._overlay import draw_prediction
from ._prediction import RESULT_SCHEMA, Prediction
from .sinks import VideoSink
from .sinks._parquet import ParquetSink
from .sources import probe, read_segment, whole_video

logger = logging.getLogger(__name__)

_END = None


@dataclass(frozen=True)
class VideoOutput:
    """Write ``source`` with overlays to ``path``; its frame n has index ``base_index + n``."""

    source: str
    path: str
    base_index: int
    frame_count: int


class _VideoWriter:
    """Decodes each source video in order, draws its rows, encodes; on its own thread."""

    def __init__(self, outputs: Sequence[VideoOutput], max_queued_rows: int) -> None:
        self.outputs = sorted(outputs, key=lambda o: o.base_index)
        self.rows: queue.Queue[dict[str, Any] | None] = queue.Queue(max_queued_rows)
        self.error: BaseException | None = None
        self.frames_written = 0
        self._thread = threading.Thread(
            target=self._run, name="distinfer-video-writer", daemon=True
        )
        self._thread.start()

    def feed(self, row: dict[str, Any]) -> None:
        self.rows.put(row)

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
        with VideoSink(out.path, info.fps, (info.width, info.height), overwrite=True) as sink:
            for _ in range(out.frame_count):
                row = self.rows.get()
                if row is _END:
                    raise RuntimeError("video rows ended early")
                number = row["index"] - out.base_index
                image = _next_frame(frames, number)
                if image is None:
                    continue  # the source cannot be decoded here either; row has the error
                if not row.get("error"):
                    image = draw_prediction(image, Prediction.from_row(row), copy=False)
                sink.write(image)
                self.frames_written += 1


def _next_frame(frames: Any, number: int) -> np.ndarray | None:
    for n, image in frames:
        if n == number:
            return np.ascontiguousarray(image)
        if n > number:
            return None
    return None


class OrderedCollector:
    """Reorders rows by index and writes them once. Run as a Ray actor."""

    def __init__(
        self,
        parquet_dir: str,
        fingerprint: str,
        *,
        rows_per_part: int,
        flush_interval_s: float,
        videos: Sequence[VideoOutput] = (),
    ) -> None:
        self.epoch = uuid.uuid4().hex
        self.sink = ParquetSink(parquet_dir, fingerprint=fingerprint, rows_per_part=rows_per_part)
        self.flush_interval_s = flush_interval_s
        self.next_index = self.sink.committed_until
        self.buffer: dict[int, dict[str, Any]] = {}
        self.duplicates = 0
        self.max_buffered = 0
        self._last_commit = time.monotonic()
        self.video = _VideoWriter(videos, max_queued_rows=256) if videos else None
        self.first_image_index = max((v.base_index + v.frame_count for v in videos), default=0)
        if self.video is not None and self.next_index > 0:
            self._replay_committed_frames()

    def _replay_committed_frames(self) -> None:
        """After a restart, feed the video writer the frame rows committed before."""
        assert self.video is not None
        for part in self.sink.manifest["parts"]:
            if part["first"] >= self.first_image_index:
                break  # videos come first; the rest are images
            table = pq.read_table(self.sink.folder / part["file"], schema=RESULT_SCHEMA)
            for row in table.to_pylist():
                if row["frame"] is not None:
                    self.video.feed(row)

    def add(self, rows: Sequence[dict[str, Any]]) -> tuple[str, int]:
        """Take rows in any order; return ``(epoch, committed_until)``."""
        for row in rows:
            index = row["index"]
            if index < self.next_index or index in self.buffer:
                self.duplicates += 1
                continue
            self.buffer[index] = row
        self.max_buffered = max(self.max_buffered, len(self.buffer))
        ready = []
        while self.next_index in self.buffer:
            ready.append(self.buffer.pop(self.next_index))
            self.next_index += 1
        if ready:
            before = self.sink.committed_until
            self.sink.write(ready)
            if self.sink.committed_until != before:
                self._last_commit = time.monotonic()
            if self.video is not None:
                for row in ready:
                    if row["frame"] is not None:
                        self.video.feed(row)
        if time.monotonic() - self._last_commit > self.flush_interval_s:
            self.sink.flush()
            self._last_commit = time.monotonic()
        return self.epoch, self.sink.committed_until

    def flush(self) -> tuple[str, int]:
        """Commit every row that is in order; return ``(epoch, committed_until)``."""
        self.sink.flush()
        self._last_commit = time.monotonic()
        return self.epoch, self.sink.committed_until

    def status(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "committed_until": self.sink.committed_until,
            "next_index": self.next_index,
            "buffered": len(self.buffer),
            "max_buffered": self.max_buffered,
            "duplicates": self.duplicates,
        }

    def finish(self, total: int, stats: Mapping[str, Any]) -> dict[str, Any]:
        """Commit the rest, close the video, mark the manifest finished."""
        if self.video is not None:
            self.video.close()
        return self.sink.finish(total, {**stats, "collector": self.status()})

    def pid(self) -> int:
        import os

        return os.getpid()
