"""The engine's host threads: a bound on the calls in flight, items gathered when they
queue up, a bad call costs only itself."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from distinfer.engine._threads import MAX_NICENESS, HostThreads, run_niced


def test_submit_blocks_while_every_thread_is_busy_and_shutdown_finishes_the_queue() -> None:
    release = threading.Event()
    running: list[int] = []
    done: list[int] = []

    def job(i: int) -> None:
        running.append(i)
        release.wait(10)
        done.append(i)

    host = HostThreads(2, "test-host")
    host.submit(job, 0)
    host.submit(job, 1)
    third = threading.Thread(target=host.submit, args=(job, 2))
    third.start()
    time.sleep(0.2)
    assert third.is_alive() and sorted(running) == [0, 1]  # the third waits for a slot
    release.set()
    third.join(10)
    host.shutdown()
    assert sorted(done) == [0, 1, 2]


def test_a_call_that_raises_is_logged_and_the_threads_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    results: list[int] = []

    def bad() -> None:
        raise ValueError("boom")

    host = HostThreads(1, "test-host")
    host.submit(bad)
    host.submit(results.append, 7)  # the only thread is still there, its slot given back
    host.shutdown()
    assert results == [7]
    assert "a host task failed" in caplog.text and "boom" in caplog.text


def test_at_least_one_thread() -> None:
    with pytest.raises(ValueError, match="count must be >= 1"):
        HostThreads(0, "none")


def test_queued_items_are_gathered_up_to_the_limit_and_a_call_behind_them_keeps_its_turn() -> None:
    started, release = threading.Event(), threading.Event()
    runs: list[list[str]] = []

    def run_items(items: list[str]) -> None:
        if items == ["first"]:
            started.set()
            release.wait(10)  # the only thread is busy: the rest queue up
        runs.append(items)

    host = HostThreads(1, "test-host", slots=8, gather=3, run_items=run_items)
    host.submit_item("first")
    assert started.wait(10)  # taken alone: nothing was queued behind it
    for name in ("a", "b", "c", "d"):
        host.submit_item(name)
    host.submit(runs.append, ["a call"])
    host.submit_item("e")
    release.set()
    host.shutdown()
    assert runs == [["first"], ["a", "b", "c"], ["d"], ["a call"], ["e"]]


def test_items_need_a_function_to_run_them() -> None:
    host = HostThreads(1, "test-host")
    with pytest.raises(RuntimeError, match="without run_items"):
        host.submit_item("x")
    host.shutdown()


def _niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(sys.platform != "linux", reason="niceness per thread is Linux's")
def test_run_niced_runs_on_a_nicer_thread_whose_threads_inherit_it() -> None:
    base = _niceness()
    seen: dict[str, int] = {}

    def started() -> None:
        seen["started"] = _niceness()

    def fn(x: int) -> int:
        seen["fn"] = _niceness()
        thread = threading.Thread(target=started)
        thread.start()
        thread.join()
        return 2 * x

    assert run_niced(3, fn, 21) == 42
    assert seen == {"fn": min(MAX_NICENESS, base + 3), "started": min(MAX_NICENESS, base + 3)}
    assert _niceness() == base  # the caller keeps its own

    def fails() -> None:
        raise KeyError("no such stage")

    with pytest.raises(KeyError, match="no such stage"):
        run_niced(3, fails)
    assert run_niced(0, threading.get_native_id) == threading.get_native_id()  # 0: in place
