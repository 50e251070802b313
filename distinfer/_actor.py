"""The inference actor: one per node, holding the engine, reading its own inputs.

The driver sends references (paths, archive members, video segments); the
actor reads and decodes them on its node, runs them through its ``Engine``
(queue sized to the node's cores), sends the result rows straight to the
collector, and answers the driver with a small ``UnitDone``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ._config import ModelConfig
from ._engine import Engine, Outcome
from ._errors import InputError
from ._overlay import draw_prediction
from ._prediction import Prediction
from ._work import ImageUnit, UnitDone, VideoUnit, WorkUnit
from .sources import ArchiveCache, read_bytes, read_segment, safe_relpath

logger = logging.getLogger(__name__)


def error_row(index: int, source: str, frame: int | None, error: str, node: str) -> dict[str, Any]:
    """The row of an item that failed: ``error`` set, no predictions."""
    return {
        "index": index,
        "source": source,
        "frame": frame,
        "width": None,
        "height": None,
        "predictions": [],
        "text": None,
        "tensors": [],
        "error": error,
        "node": node,
    }


def result_row(
    index: int, source: str, frame: int | None, prediction: Prediction, node: str
) -> dict[str, Any]:
    return {
        "index": index,
        "source": source,
        "frame": frame,
        **prediction.to_row(),
        "error": None,
        "node": node,
    }


def describe(exc: BaseException) -> str:
    """A one-line error for a row: our own messages as they are, others with their type."""
    if isinstance(exc, InputError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class _Countdown:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._open = 0

    def add(self) -> None:
        with self._cond:
            self._open += 1

    def done(self) -> None:
        with self._cond:
            self._open -= 1
            self._cond.notify_all()

    def wait(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._open == 0)


class InferenceActor:
    """Run as a Ray actor (see ``_driver.start_actors``); usable in-process for tests."""

    def __init__(
        self,
        model: ModelConfig,
        base_dir: str,
        *,
        jobs: int | None,
        max_image_pixels: int,
        max_file_bytes: int,
        overlays_dir: str | None,
        node: str,
    ) -> None:
        task = model.build_task(base_dir)
        self.engine = Engine(
            task,
            device=model.device,
            jobs=jobs,
            config=model.openvino,
            cache_dir=model.cache_dir,
            max_image_pixels=max_image_pixels,
        ).start()
        self.max_file_bytes = max_file_bytes
        self.overlays_dir = Path(overlays_dir) if overlays_dir else None
        self.node = node
        self.archives = ArchiveCache()

    def info(self) -> dict[str, Any]:
        return {"node": self.node, "pid": os.getpid(), "jobs": self.engine.jobs}

    def process(self, unit: WorkUnit, collector: Any) -> UnitDone:
        """Infer every item of ``unit``, hand the rows to ``collector``, report.

        The collector comes with each unit rather than to the constructor: Ray
        keeps constructor arguments that are handles for restarts, and warns.
        """
        import ray

        start = time.perf_counter()
        rows: list[dict[str, Any]] = []
        lock = threading.Lock()
        pending = _Countdown()

        def collect(row: dict[str, Any]) -> None:
            with lock:
                rows.append(row)

        if isinstance(unit, ImageUnit):
            self._submit_images(unit, collect, pending)
        else:
            self._submit_video(unit, collect, pending)
        pending.wait()
        rows.sort(key=lambda r: r["index"])
        # While the collector restarts, Ray holds this call and retries it on the new
        # instance (max_task_retries=-1); the epoch it answers with tells the driver.
        epoch, committed_until = ray.get(collector.add.remote(rows))
        errors = [r["error"] for r in rows if r["error"]]
        return UnitDone(
            unit_id=unit.unit_id,
            node=self.node,
            items=len(rows),
            errors=len(errors),
            busy_s=time.perf_counter() - start,
            collector_epoch=epoch,
            committed_until=committed_until,
            error_samples=tuple(errors[:3]),
        )

    def _submit(
        self,
        image: np.ndarray | bytes,
        index: int,
        source: str,
        frame: int | None,
        overlay: Path | None,
        collect: Any,
        pending: _Countdown,
    ) -> None:
        def done(outcome: Outcome, pixels: np.ndarray | None) -> None:
            try:
                if isinstance(outcome, BaseException):
                    collect(error_row(index, source, frame, describe(outcome), self.node))
                    return
                if overlay is not None and pixels is not None:
                    _write_overlay(overlay, draw_prediction(pixels, outcome))
                collect(result_row(index, source, frame, outcome, self.node))
            except BaseException as exc:  # noqa: BLE001 - becomes this item's error row
                collect(error_row(index, source, frame, describe(exc), self.node))
            finally:
                pending.done()

        pending.add()
        self.engine.submit(image, done)

    def _submit_images(self, unit: ImageUnit, collect: Any, pending: _Countdown) -> None:
        for index, ref in unit.items:
            if ref.error is not None:
                collect(error_row(index, ref.source, None, ref.error, self.node))
                continue
            overlay = None
            try:
                data = read_bytes(ref, self.max_file_bytes, archives=self.archives)
                if self.overlays_dir is not None:
                    name = ref.relpath or Path(ref.path).name
                    overlay = overlay_path(self.overlays_dir, name, index)
            except InputError as exc:
                collect(error_row(index, ref.source, None, str(exc), self.node))
                continue
            self._submit(data, index, ref.source, None, overlay, collect, pending)

    def _submit_video(self, unit: VideoUnit, collect: Any, pending: _Countdown) -> None:
        seen: set[int] = set()
        try:
            for number, frame in read_segment(unit.path, unit.segment):
                seen.add(number)
                self._submit(
                    frame, unit.base_index + number, unit.source, number, None, collect, pending
                )
        except InputError as exc:
            reason = str(exc)
        else:
            reason = "frame could not be decoded (missing from the stream)"
        for number in range(unit.segment.start_frame, unit.segment.end_frame):
            if number not in seen:
                collect(error_row(unit.base_index + number, unit.source, number, reason, self.node))


def overlay_path(folder: Path, relpath: str, index: int) -> Path:
    """Where the overlay of an input goes: ``<folders>/<stem>-<index>.jpg`` inside ``folder``.

    The name comes from the input (an archive member, a list entry): cleaned
    again here so that no source can produce a path outside ``folder``. The
    index keeps names unique (``../x.jpg`` and ``x.jpg`` clean to the same name).

    >>> overlay_path(Path("/out"), "../../etc/x.jpg", 7)
    PosixPath('/out/etc/x-7.jpg')
    """
    clean = Path(safe_relpath(relpath))
    return folder / clean.parent / f"{clean.stem}-{index}.jpg"


def _write_overlay(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.jpg")
    if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write overlay image {path}")
    os.replace(tmp, path)
