"""The engine's host threads: a fixed pool fed from one queue, with a bound on the
items in flight.

Both are ``queue.SimpleQueue``, whose ``put`` and ``get`` are C and release the GIL
while they block. ``concurrent.futures.ThreadPoolExecutor`` and
``threading.BoundedSemaphore`` are Python around ``threading.Condition``: each item
paid for a ``Future``, an idle-thread semaphore and a condition's wait and notify,
all under the GIL, on top of the thread hand-offs themselves.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

Job = tuple[Callable[..., object], tuple[Any, ...]]


class HostThreads:
    """``count`` threads running submitted calls; at most ``count`` in flight."""

    def __init__(self, count: int, name: str) -> None:
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._slots: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(count):
            self._slots.put(None)
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True)
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` on a host thread; blocks while ``count`` calls are in flight.

        ``fn`` reports its own failures: one that raises is logged and the thread goes on.
        """
        self._slots.get()
        self._jobs.put((fn, args))

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, args = job
            try:
                fn(*args)
            except BaseException:  # a host thread outlives one bad call
                logger.exception("a host task failed")
            finally:
                self._slots.put(None)

    def shutdown(self) -> None:
        """Finish every call submitted, then stop the threads."""
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()
