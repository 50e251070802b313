"""Memory is bounded by configuration, not input size: with one actor held up, the other
runs ahead only as far as the reorder window, which the collector's buffer then fills,
and never more than the window plus one unit."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from _jobs import job_config, write_images

from distinfer import RunConfig, RunSummary, read_results, run

WINDOW = 16
UNIT = 4
ACTOR = "ray::InferenceActor"
#: No unit delivered for this long while one actor is held: the other has nothing to do.
QUIET_S = 2.0


def test_a_held_up_actor_makes_the_other_fill_the_reorder_window_and_go_no_further(
    ray_session: Any, processes: Any, tmp_path: Path
) -> None:
    """One actor is stopped (SIGSTOP) while it is still being constructed, so it holds
    the first unit sent to it, untouched, for as long as the test likes; a slow input
    would only be slow relative to the machine's load. One credit each: the first
    units go to the two actors, so the held unit starts at index 0 or ``UNIT``."""
    write_images(tmp_path / "imgs", 240)
    before = processes.titled(os.getpid(), ACTOR)  # actors of earlier tests, on their way out
    held: list[int] = []
    released: list[int] = []  # ``processed`` when the held actor was let go
    done = threading.Event()

    def hold_an_actor_in_its_constructor() -> None:
        while not done.is_set() and not held:
            for pid in sorted(processes.titled(os.getpid(), ACTOR + ".__init__") - before):
                os.kill(pid, signal.SIGSTOP)
                if processes.cmdline(pid).startswith(ACTOR + ".__init__"):
                    held.append(pid)
                    return
                os.kill(pid, signal.SIGCONT)  # constructed meanwhile: it may have started a unit
            time.sleep(0.002)

    last = {"processed": -1, "since": time.monotonic()}

    def release_once_the_others_are_done(summary: RunSummary, total: int | None) -> None:
        now = time.monotonic()
        if summary.processed != last["processed"]:
            last.update(processed=summary.processed, since=now)
        quiet = now - last["since"] >= QUIET_S and summary.processed >= WINDOW - UNIT
        if held and not released and (quiet or now - last["since"] > 60):
            released.append(summary.processed)
            os.kill(held[0], signal.SIGCONT)

    config = RunConfig.parse(
        job_config(
            tmp_path,
            input={"images": str(tmp_path / "imgs")},
            cluster={
                "actors_per_node": 2,
                "items_per_unit": UNIT,
                "reorder_buffer_items": WINDOW,
                "units_in_flight_per_actor": 1,
            },
        )
    )
    watcher = threading.Thread(target=hold_an_actor_in_its_constructor, daemon=True)
    watcher.start()
    try:
        summary = run(config, progress=release_once_the_others_are_done)
    finally:
        done.set()
        watcher.join()
        for pid in held:
            os.kill(pid, signal.SIGCONT)  # whatever happened, never leave it stopped

    assert held, "no inference actor was seen in its constructor"
    # While held, the other did every unit below the held one and the window past it
    # (WINDOW - UNIT items), then nothing more: the dispatcher waited on the window.
    assert released in ([WINDOW - UNIT], [WINDOW])
    collector = summary.manifest["stats"]["collector"]
    assert WINDOW - UNIT <= collector["max_buffered"] <= WINDOW + UNIT
    rows = read_results(tmp_path / "results")
    assert rows.column("index").to_pylist() == list(range(240)) and summary.errors == 0
