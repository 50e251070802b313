"""The engine's host threads: a fixed pool fed from one queue, with a bound on the
calls in flight, and items gathered into batches when they queue up.

Both queues are ``queue.SimpleQueue``, whose ``put`` and ``get`` are C and release
the GIL while they block. ``concurrent.futures.ThreadPoolExecutor`` and
``threading.BoundedSemaphore`` are Python around ``threading.Condition``: each item
paid for a ``Future``, an idle-thread semaphore and a condition's wait and notify,
all under the GIL, on top of the thread hand-offs themselves.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import cv2

logger = logging.getLogger(__name__)

Job = tuple[Callable[..., object], tuple[Any, ...]]
T = TypeVar("T")
#: The highest niceness Linux gives a thread.
MAX_NICENESS = 19
#: Niceness added to OpenVINO's inference threads (Linux; ``Engine``,
#: ``inference_niceness``). ``distinfer bench --modes host --model ppocr --repeat 3``
#: (2 cores, two runs each, alternately): the host threads waited 2.5 / 2.5 ms a page
#: for a core at 10 against 11.5 / 11.6 at 0, and the GIL was held 1.81 / 1.46
#: against 2.74 / 3.02 ms a page; ``distinfer bench --repeat 3`` (ppocr-det): async
#: 0.920 of the limit against 0.922.
INFERENCE_NICENESS = 10


def _item(*args: Any) -> None:
    """Marks a queued item (``submit_item``); never called."""


#: ``_gathered`` found no job behind the items: the thread takes the next from the queue.
_NEXT: Any = object()


class HostThreads:
    """``count`` threads running submitted calls; at most ``slots`` calls and items
    in flight (default ``count``).

    ``submit_item`` queues one item for ``run_items``: a thread that takes an item
    also takes the items queued behind it, up to ``gather``, and runs them in one
    call. Under load (more items queued than threads) the items go in batches,
    which a task runs with fewer infer requests and thread hand-offs per item; one
    item at a time still goes alone, at once.
    """

    def __init__(
        self,
        count: int,
        name: str,
        *,
        slots: int | None = None,
        gather: int = 1,
        run_items: Callable[[list[Any]], object] | None = None,
    ) -> None:
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        if gather < 1:
            raise ValueError(f"gather must be >= 1, got {gather}")
        self._gather = gather
        self._run_items = run_items
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._slots: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(slots or count):
            self._slots.put(None)
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True)
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` on a host thread; blocks while every slot is taken.

        ``fn`` reports its own failures: one that raises is logged and the thread goes on.
        """
        self._slots.get()
        self._jobs.put((fn, args))

    def submit_item(self, item: Any) -> None:
        """Queue ``item`` for ``run_items`` (with the items queued beside it); blocks
        while every slot is taken."""
        if self._run_items is None:
            raise RuntimeError("these host threads were made without run_items")
        self._slots.get()
        self._jobs.put((_item, (item,)))

    def _work(self) -> None:
        job = self._jobs.get()
        while job is not None:
            fn, args = job
            behind: Any = _NEXT
            if fn is _item:
                items, behind = self._gathered(args[0])
                self._run(self._run_items, items)  # type: ignore[arg-type]
                taken = len(items)
            else:
                self._run(fn, *args)
                taken = 1
            for _ in range(taken):
                self._slots.put(None)
            job = self._jobs.get() if behind is _NEXT else behind

    def _gathered(self, first: Any) -> tuple[list[Any], Any]:
        """``first`` and the items queued behind it (up to ``gather``); what to run next
        (a job found behind them, or ``_NEXT``: take from the queue)."""
        items = [first]
        while len(items) < self._gather:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is None or job[0] is not _item:
                return items, job
            items.append(job[1][0])
        return items, _NEXT

    @staticmethod
    def _run(fn: Callable[..., object], *args: Any) -> None:
        try:
            fn(*args)
        except BaseException:  # a host thread outlives one bad call
            logger.exception("a host task failed")

    def shutdown(self) -> None:
        """Finish every call and item submitted, then stop the threads."""
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_niced(niceness: int, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on a new thread whose niceness is first raised by ``niceness``;
    the threads that ``fn`` starts inherit it. Its result, or its exception.

    On Linux niceness belongs to each thread, and a new thread starts with its
    creator's: OpenVINO's inference threads, started when a model compiles, run
    below the Python threads that compiled it (``Engine``). Elsewhere, or with
    ``niceness`` 0, ``fn`` runs on the calling thread; where the system refuses
    the niceness, on the new thread at the caller's. Raising niceness needs no
    privilege; lowering it again does, hence a thread of its own.
    """
    if niceness <= 0 or sys.platform != "linux":
        return fn(*args)
    outcome: list[tuple[bool, Any]] = []  # (raised, the result or the exception)

    def run() -> None:
        me = threading.get_native_id()
        try:
            now = os.getpriority(os.PRIO_PROCESS, me)
            os.setpriority(os.PRIO_PROCESS, me, min(MAX_NICENESS, now + niceness))
        except OSError as exc:
            logger.debug("cannot raise this thread's niceness (%s): it stays at its own", exc)
        try:
            outcome.append((False, fn(*args)))
        except BaseException as exc:  # noqa: BLE001 - raised again on the caller's thread
            outcome.append((True, exc))

    thread = threading.Thread(target=run, name="distinfer-niced", daemon=True)
    thread.start()
    thread.join()
    raised, value = outcome[0]
    if raised:
        raise value
    result: T = value
    return result


def single_threaded_opencv() -> None:
    """Make every OpenCV call run on its calling thread, process-wide.

    The engine's parallelism is its host threads and OpenVINO's streams; OpenCV's
    own thread pool on top only spins up and waits. Measured here with
    ``distinfer bench --modes host`` (CPU of the whole process per page, outside
    decode): ppocr-det 0.98 -> 0.58 ms with no change in the async pipeline's
    throughput. Called where distinfer owns the process (its inference actors and
    Ray Data predictor actors); in your own process it is your choice.
    """
    cv2.setNumThreads(1)
