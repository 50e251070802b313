"""``Deployment``: the Geti SDK's local deployment API on distinfer's engine.

Differences from the Geti SDK, on purpose: ``max_async_infer_requests=None``
sizes the queue to the cores, two per OpenVINO stream at least (not one
request); synchronous ``infer`` runs on a LATENCY-hint compile of the same
models (made on first use), so one image at a time still uses every core;
user callbacks run on one dispatcher thread of ours, never on OpenVINO's; an
exception in a callback or in post-processing is collected and raised from the
next ``await_all()`` with the ``runtime_data`` of the item, and the queue stays
usable.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import InferenceError
from ..models import Task, load_folder, save_folder, task_from_model
from ._engine import Engine, Image, Outcome
from ._prediction import Prediction
from ._threads import INFERENCE_NICENESS

logger = logging.getLogger(__name__)

Callback = Callable[[Any, Prediction, Any], None]
_STOP = object()


class Deployment:
    """A model (or chain of models) ready for synchronous or asynchronous inference.

    >>> deployment = Deployment.from_model("ppocr")              # doctest: +SKIP
    >>> deployment.load_inference_models()                     # doctest: +SKIP
    >>> deployment.infer(rgb_image).text                       # doctest: +SKIP
    'Invoice 2041'
    >>> deployment.set_asynchronous_callback(lambda img, pred, data: print(data, pred.text))
    ... # doctest: +SKIP
    >>> for i, img in enumerate(images):                       # doctest: +SKIP
    ...     deployment.infer_async(img, runtime_data=i)
    >>> deployment.await_all()                                 # doctest: +SKIP
    """

    def __init__(self, task: Task) -> None:
        self.task = task
        self._engine: Engine | None = None
        self._sync_engine: Engine | None = None
        self._settings: dict[str, Any] = {}
        self._callback: Callback | None = None
        self._dispatcher: threading.Thread | None = None
        self._completions: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending = 0
        self._failures: list[tuple[Any, BaseException]] = []
        self._state = threading.Condition()

    # -- construction ------------------------------------------------------------

    @classmethod
    def from_model(
        cls,
        model: str | Path,
        *,
        task: str | None = None,
        labels: Sequence[str] | None = None,
        **options: Any,
    ) -> Deployment:
        """A bundled model name (``"ppocr"``) or a model file, with optional task and labels."""
        return cls(task_from_model(model, task=task, labels=labels, **options))

    @classmethod
    def from_folder(cls, path: str | Path) -> Deployment:
        """A folder written by ``save``, or a Geti SDK deployment folder."""
        return cls(load_folder(Path(path)))

    def save(self, path: str | Path) -> Path:
        """Write a deployment folder that ``from_folder`` reads back."""
        return save_folder(self.task, Path(path))

    # -- models ------------------------------------------------------------------

    def load_inference_models(
        self,
        device: str = "CPU",
        max_async_infer_requests: int | None = None,
        openvino_configuration: Mapping[str, Any] | None = None,
        cache_dir: str | Path | None = None,
        inference_niceness: int = INFERENCE_NICENESS,
    ) -> None:
        """Compile the models. ``max_async_infer_requests=None``: one request per core,
        and at least two per OpenVINO stream.

        ``openvino_configuration`` applies to both compiles; its
        ``PERFORMANCE_HINT`` (default THROUGHPUT) to the asynchronous one only.
        ``inference_niceness``: the asynchronous engine's inference threads run that
        much nicer than its host threads (``Engine``; Linux).
        """
        self.close()
        self._settings = {
            "device": device,
            "config": dict(openvino_configuration or {}),
            "cache_dir": cache_dir,
        }
        self._engine = Engine(
            self.task,
            jobs=max_async_infer_requests,
            inference_niceness=inference_niceness,
            **self._settings,
        ).start()

    @property
    def engine(self) -> Engine:
        """The compiled engine (loaded on first use with the defaults)."""
        if self._engine is None:
            self.load_inference_models()
        assert self._engine is not None
        return self._engine

    @property
    def sync_engine(self) -> Engine:
        """The LATENCY-hint engine behind synchronous ``infer`` (compiled on first use)."""
        if self._sync_engine is None:
            settings = self._settings or {"device": "CPU", "config": {}, "cache_dir": None}
            config = {**settings["config"], "PERFORMANCE_HINT": "LATENCY"}
            self._sync_engine = Engine(
                self.task,
                device=settings["device"],
                config=config,
                cache_dir=settings["cache_dir"],
                latency=True,
            ).start()
        return self._sync_engine

    def close(self) -> None:
        """Wait for items in flight, stop the dispatcher, release the models."""
        for engine in (self._engine, self._sync_engine):
            if engine is not None:
                engine.close()
        self._engine = self._sync_engine = None
        self._stop_dispatcher()

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- synchronous -------------------------------------------------------------

    def infer(self, image: Image) -> Prediction:
        """Infer one RGB HxWx3 uint8 image (or encoded image bytes). Thread-safe.

        Raises ``InputError`` (a ``ValueError``) for a bad image.
        """
        if self.asynchronous_mode:  # the models are hot: no second compile
            return self.engine.predict(image)
        return self.sync_engine.predict(image)

    # -- asynchronous ------------------------------------------------------------

    @property
    def asynchronous_mode(self) -> bool:
        """True once a callback is set; setting False waits and removes the callback."""
        return self._callback is not None

    @asynchronous_mode.setter
    def asynchronous_mode(self, value: bool) -> None:
        if value and self._callback is None:
            raise ValueError(
                "set a callback with set_asynchronous_callback() to enable asynchronous mode"
            )
        if not value:
            self._drain()
            self._callback = None
            self._stop_dispatcher()

    def set_asynchronous_callback(self, callback: Callback) -> None:
        """Switch to asynchronous mode: ``callback(image, prediction, runtime_data)``
        runs for every item, on one dispatcher thread, in completion order."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        self._callback = callback
        if self._dispatcher is None:
            self._dispatcher = threading.Thread(
                target=self._dispatch, name="distinfer-callbacks", daemon=True
            )
            self._dispatcher.start()
        logger.info("asynchronous mode enabled")

    def infer_async(self, image: Image, runtime_data: Any = None) -> None:
        """Queue one image; blocks only while the queue is full.

        A bad image or a failed callback does not raise here: it is reported,
        with its ``runtime_data``, by the next ``await_all()``.
        """
        if self._callback is None:
            raise RuntimeError(
                "no asynchronous callback: call set_asynchronous_callback() before infer_async()"
            )
        with self._state:
            self._pending += 1

        def done(outcome: Outcome, pixels: np.ndarray | None) -> None:
            self._completions.put((image if pixels is None else pixels, outcome, runtime_data))

        try:
            self.engine.submit(image, done)
        except BaseException:
            self._finish_one()
            raise

    def await_all(self) -> None:
        """Wait for every queued item and its callback; raise ``InferenceError``
        (with each failed item's ``runtime_data``) if any failed."""
        self._drain()
        with self._state:
            failures, self._failures = self._failures, []
        if failures:
            raise InferenceError(failures)

    def await_any(self) -> None:
        """Wait until at least one more item can be queued without blocking."""
        engine = self.engine
        with self._state:
            self._state.wait_for(lambda: self._pending < engine.max_in_flight)

    # -- internals ----------------------------------------------------------------

    def _drain(self) -> None:
        with self._state:
            self._state.wait_for(lambda: self._pending == 0)

    def _finish_one(self) -> None:
        # Wake a waiter only when what it waits for may have come true: nothing
        # pending (_drain), or room for one more (await_any); not once per item. The
        # engine may be gone (close() drains after closing it): never load it here.
        engine = self._engine
        room = engine.max_in_flight - 1 if engine is not None else 0
        with self._state:
            self._pending -= 1
            if self._pending in (0, room):
                self._state.notify_all()

    def _dispatch(self) -> None:
        while True:
            item = self._completions.get()
            if item is _STOP:
                return
            image, outcome, runtime_data = item
            try:
                if isinstance(outcome, BaseException):
                    raise outcome
                callback = self._callback
                if callback is not None:
                    callback(image, outcome, runtime_data)
            except BaseException as exc:  # noqa: BLE001 - reported by await_all
                with self._state:
                    self._failures.append((runtime_data, exc))
            finally:
                self._finish_one()

    def _stop_dispatcher(self) -> None:
        if self._dispatcher is not None:
            self._drain()
            self._completions.put(_STOP)
            self._dispatcher.join()
            self._dispatcher = None
