"""The inference actor: one per node, holding the engine, reading its own inputs.

The driver sends references (paths, archive members, video segments); the
actor reads and decodes them on its node, runs them through its ``Engine``
(queue sized to the node's cores), sends the result rows straight to the
collector as one Arrow batch (``ResultBatch``), and answers the driver with a
small ``UnitDone``.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np

from .._errors import InputError, StorageUnavailableError
from .._sections import ModelConfig
from ..engine._engine import Engine, Image, Outcome
from ..engine._overlay import draw_prediction
from ..engine._threads import single_threaded_opencv
from ..sources import ArchiveCache, read_bytes, read_segment, safe_relpath
from ..storage import Location
from ._logs import LogForwarder
from ._metrics import ActorMetrics
from ._rows import ItemResult, ResultBatch, describe
from ._startup import warm_up
from ._work import ImageUnit, UnitDone, VideoUnit, WorkUnit

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Finished:
    """An item as the engine finished it: its outcome, and its pixels if an overlay waits."""

    index: int
    source: str
    frame: int | None
    outcome: Outcome
    pixels: np.ndarray | None = None
    overlay: Location | None = None


_Collect = Callable[[_Finished | ItemResult], None]


class _Countdown:
    """The items of one unit still in the engine."""

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
        model_location: Location | None,
        *,
        jobs: int | None,
        max_image_pixels: int,
        max_file_bytes: int,
        overlays: Location | None,
        node: str,
        log_level: int = logging.WARNING,
        metrics_run: str | None = None,
    ) -> None:
        self.logs = LogForwarder.install(log_level)
        single_threaded_opencv()  # this process is ours: parallelism is the engine's
        # ``cluster.metrics``: counters and latencies tagged with the run and the node
        self.metrics = (
            ActorMetrics(run=metrics_run, node=_node_id()) if metrics_run is not None else None
        )
        # Imports that the first unit would otherwise pay for, on a thread of their
        # own while OpenVINO compiles (it releases the GIL).
        warming = threading.Thread(target=_warm_up, name="distinfer-warm-up", daemon=True)
        warming.start()
        task = model.build_task(model_location)  # fetched once per node when remote
        self.engine = Engine(
            task,
            device=model.device,
            jobs=jobs,
            config=model.openvino,
            cache_dir=model.cache_dir,
            max_image_pixels=max_image_pixels,
            batch=model.batch,
            inference_niceness=model.inference_niceness,
            on_stage=self.metrics.stage if self.metrics is not None else None,
        ).start()
        self.max_file_bytes = max_file_bytes
        self.overlays = overlays
        self.node = node
        self.archives = ArchiveCache()
        warming.join()

    def info(self) -> dict[str, Any]:
        return {"node": self.node, "pid": os.getpid(), "jobs": self.engine.jobs}

    def process(self, unit: WorkUnit, collector: Any) -> UnitDone:
        """Infer every item of ``unit``, hand the rows to ``collector``, report.

        The collector comes with each unit rather than to the constructor: Ray
        keeps constructor arguments that are handles for restarts, and warns.
        """
        import ray

        start = time.perf_counter()
        finished: list[_Finished | ItemResult] = []
        lock = threading.Lock()
        pending = _Countdown()

        def collect(item: _Finished | ItemResult) -> None:
            with lock:
                finished.append(item)

        if isinstance(unit, ImageUnit):
            self._submit_images(unit, collect, pending)
        else:
            self._submit_video(unit, collect, pending)
        pending.wait()
        # Overlays are drawn and written here, on the unit's thread, never holding an
        # engine slot; a store gone past its retries fails the unit (no error rows).
        batch = ResultBatch.from_items([self._result(item) for item in finished])
        if (batch.first, batch.end) != (unit.first_index, unit.first_index + len(unit)):
            raise RuntimeError(  # a bug here, not a bad input: the driver retries, then splits
                f"unit {unit.unit_id}: rows {batch.first}..{batch.end - 1}, expected "
                f"{unit.first_index}..{unit.first_index + len(unit) - 1}"
            )
        # While the collector restarts, Ray holds this call and retries it on the new
        # instance (max_task_retries=-1); the epoch it answers with tells the driver.
        epoch, committed_until = ray.get(collector.add.remote(batch))
        errors = batch.errors()
        if self.metrics is not None:
            self.metrics.unit_done(len(batch), len(errors))
        return UnitDone(
            unit_id=unit.unit_id,
            node=self.node,
            items=len(batch),
            errors=len(errors),
            busy_s=time.perf_counter() - start,
            collector_epoch=epoch,
            committed_until=committed_until,
            error_samples=tuple(errors[:3]),
            logs=self.logs.drain(),
        )

    def _failed(self, index: int, source: str, frame: int | None, error: str) -> ItemResult:
        return ItemResult(index, source, frame, self.node, error=error)

    def _result(self, item: _Finished | ItemResult) -> ItemResult:
        """An item's result; its overlay drawn and written first, if asked for."""
        if isinstance(item, ItemResult):
            return item
        index, source, frame, outcome = item.index, item.source, item.frame, item.outcome
        if isinstance(outcome, BaseException):
            return self._failed(index, source, frame, describe(outcome))
        try:
            if item.overlay is not None and item.pixels is not None:
                _write_overlay(item.overlay, draw_prediction(item.pixels, outcome, copy=False))
        except StorageUnavailableError:
            raise  # the store, not this item: the unit fails
        except BaseException as exc:  # noqa: BLE001 - becomes this item's error row
            return self._failed(index, source, frame, describe(exc))
        return ItemResult(index, source, frame, self.node, outcome)

    def _submit(
        self,
        image: np.ndarray | bytes,
        index: int,
        source: str,
        frame: int | None,
        overlay: Location | None,
        collect: _Collect,
        pending: _Countdown,
    ) -> None:
        def done(outcome: Outcome, pixels: np.ndarray | None) -> None:
            try:  # pixels are kept only for an overlay
                collect(
                    _Finished(index, source, frame, outcome, pixels if overlay else None, overlay)
                )
            finally:
                pending.done()

        pending.add()
        self.engine.submit(image, done)

    def _submit_images(self, unit: ImageUnit, collect: _Collect, pending: _Countdown) -> None:
        """Read the unit's files here; infer them as one host task of the engine.

        One task per unit rather than per item: for small images the per-item
        overhead (a task, a queue round trip each) would cost more than the model.
        """
        todo: list[tuple[int, str, Location | None]] = []  # (index, source, overlay)
        images: list[Image] = []
        for index, ref in unit.items:
            if ref.error is not None:
                collect(self._failed(index, ref.source, None, ref.error))
                continue
            overlay = None
            try:
                data = read_bytes(ref, self.max_file_bytes, archives=self.archives)
                if self.overlays is not None:
                    name = ref.relpath or Path(ref.path).name
                    overlay = overlay_path(self.overlays, name, index)
            except InputError as exc:
                collect(self._failed(index, ref.source, None, str(exc)))
                continue
            todo.append((index, ref.source, overlay))
            images.append(data)
        if not images:
            return

        def done(outcomes: list[Outcome], pixels: list[np.ndarray | None]) -> None:
            try:
                for (index, source, overlay), outcome, image in zip(
                    todo, outcomes, pixels, strict=True
                ):
                    kept = image if overlay is not None else None  # only for an overlay
                    collect(_Finished(index, source, None, outcome, kept, overlay))
            finally:
                pending.done()

        pending.add()
        self.engine.submit_batch(images, done)

    def _submit_video(self, unit: VideoUnit, collect: _Collect, pending: _Countdown) -> None:
        seen: set[int] = set()
        try:
            for number, frame in read_segment(unit.location, unit.segment):
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
                collect(self._failed(unit.base_index + number, unit.source, number, reason))


def _node_id() -> str:
    """This node's id as actor names show it (its first 12 hex digits)."""
    import ray

    return str(ray.get_runtime_context().get_node_id())[:12]


def _warm_up() -> None:
    warm_up()  # pyarrow's first conversion
    # Each unit carries the collector's handle: the first one loads its class.
    importlib.import_module("distinfer.distributed._collector")


def overlay_path(folder: Location, relpath: str, index: int) -> Location:
    """Where the overlay of an input goes: ``<folders>/<stem>-<index>.jpg`` inside ``folder``.

    The name comes from the input (an archive member, a list entry): cleaned
    again here so that no source can produce a path outside ``folder``. The
    index keeps names unique (``../x.jpg`` and ``x.jpg`` clean to the same name).

    >>> from distinfer.storage import resolve_location
    >>> overlay_path(resolve_location("/out"), "../../etc/x.jpg", 7).uri
    '/out/etc/x-7.jpg'
    """
    clean = PurePosixPath(safe_relpath(relpath))
    parent = "" if str(clean.parent) == "." else str(clean.parent)
    return folder.join(parent, f"{clean.stem}-{index}.jpg")


def _write_overlay(location: Location, rgb: np.ndarray) -> None:
    """One JPEG, written whole (a local rename, or one PUT on object storage)."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"cannot encode overlay image {location.uri}")
    if not location.is_local:
        location.fs.write(location.path, data.tobytes())
        return
    # Not the filesystem's write, which syncs to disk (12 ms a file measured here, on
    # the engine's host threads): an overlay need not outlive a power cut.
    path = Path(location.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data.tobytes())
    os.replace(tmp, path)
