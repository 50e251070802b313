"""``AsyncVideoProcessor``: asynchronous inference, results handled in submission order.

Unlike the Geti SDK's version (a priority queue that pops once it holds N
items), order here is exact: frame ``i`` is handed to the processing function
only after frames ``0 .. i-1``, however late any of them finishes. Memory is
bounded by ``max_buffer`` frames (``process`` blocks when it is full), the
worker waits on a condition instead of polling, and an exception in the
processing function surfaces from ``await_all()`` or the next ``process()``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from .._errors import InferenceError
from ._deployment import Deployment
from ._engine import Image, Outcome
from ._prediction import Prediction

logger = logging.getLogger(__name__)

ProcessingFunction = Callable[[Any, Prediction, Any], None]


class AsyncVideoProcessor:
    """Infer frames asynchronously; run ``processing_function`` on them in order.

    >>> processor = AsyncVideoProcessor(deployment, write_frame)   # doctest: +SKIP
    >>> processor.start()                                          # doctest: +SKIP
    >>> for i, frame in enumerate(frames):                         # doctest: +SKIP
    ...     processor.process(frame, runtime_data=i)
    >>> processor.await_all()                                      # doctest: +SKIP
    >>> processor.stop()                                           # doctest: +SKIP
    """

    def __init__(
        self,
        deployment: Deployment,
        processing_function: ProcessingFunction,
        max_buffer: int | None = None,
    ) -> None:
        if max_buffer is not None and max_buffer < 1:
            raise ValueError(f"max_buffer must be >= 1, got {max_buffer}")
        self.deployment = deployment
        self.processing_function = processing_function
        self._max_buffer = max_buffer
        self._cond = threading.Condition()
        self._results: dict[int, tuple[Any, Outcome, Any]] = {}
        self._next_submit = 0  # index the next process() call gets
        self._next_emit = 0  # index the processing function waits for
        self._failures: list[tuple[Any, BaseException]] = []  # not yet raised
        self._worker: threading.Thread | None = None
        self._stopping = False
        self._space: threading.Semaphore | None = None

    @property
    def max_buffer(self) -> int:
        """Frames between ``process()`` and the end of their processing function."""
        if self._max_buffer is None:
            return 2 * self.deployment.engine.max_in_flight
        return self._max_buffer

    def start(self) -> None:
        """Start the ordered worker (idempotent)."""
        if self._worker is not None:
            return
        self._space = threading.Semaphore(self.max_buffer)
        self._stopping = False
        self._worker = threading.Thread(target=self._emit_in_order, name="distinfer-video")
        self._worker.daemon = True
        self._worker.start()

    def process(self, frame: Image, runtime_data: Any = None) -> None:
        """Queue one frame; blocks while ``max_buffer`` frames are pending.

        Raises ``InferenceError`` for earlier frames that failed since the last report.
        """
        if self._worker is None or self._space is None:
            raise RuntimeError("AsyncVideoProcessor is not started: call start() first")
        self._raise_new_failures()
        self._space.acquire()
        with self._cond:
            index = self._next_submit
            self._next_submit += 1

        def done(outcome: Outcome, pixels: object = None) -> None:
            with self._cond:
                self._results[index] = (frame, outcome, runtime_data)
                if index == self._next_emit:
                    self._cond.notify_all()

        try:
            self.deployment.engine.submit(frame, done)
        except BaseException as exc:
            done(exc)
            raise

    def await_all(self) -> None:
        """Wait until every queued frame was processed; raise the failures collected."""
        with self._cond:
            self._cond.wait_for(lambda: self._next_emit == self._next_submit)
        self._raise_new_failures()

    def stop(self) -> None:
        """Process what is queued, then stop the worker. Failures stay for ``await_all``."""
        if self._worker is None:
            return
        with self._cond:
            self._cond.wait_for(lambda: self._next_emit == self._next_submit)
            self._stopping = True
            self._cond.notify_all()
        self._worker.join()
        self._worker = None

    def __enter__(self) -> AsyncVideoProcessor:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _raise_new_failures(self) -> None:
        with self._cond:
            failures, self._failures = self._failures, []
        if failures:
            raise InferenceError(failures)

    def _emit_in_order(self) -> None:
        assert self._space is not None
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._next_emit in self._results or self._stopping)
                if self._next_emit not in self._results:
                    return
                frame, outcome, runtime_data = self._results.pop(self._next_emit)
            try:
                if isinstance(outcome, BaseException):
                    raise outcome
                self.processing_function(frame, outcome, runtime_data)
            except BaseException as exc:  # noqa: BLE001 - surfaced to the caller
                with self._cond:
                    self._failures.append((runtime_data, exc))
            with self._cond:
                self._next_emit += 1
                self._cond.notify_all()
            self._space.release()
