"""``items_per_unit: auto``: units grow with the measured speed, within the window."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import pytest
from _jobs import job_config, write_images

from distinfer import RunConfig, RunSummary, read_results, run
from distinfer.distributed import _dispatch
from distinfer.distributed._work import AUTO_MAX_ITEMS, AUTO_MIN_ITEMS, UnitSize


def feed(size: UnitSize, items_per_s: float, seconds: float = 4.0, step_s: float = 0.1) -> None:
    t = 0.0
    while t <= seconds:
        size.observe(t, int(items_per_s * t))
        t += step_s


def test_a_fixed_size_never_changes() -> None:
    size = UnitSize(32, actors=1, units_in_flight=4, window_items=4096)
    feed(size, 10_000)
    assert size.value == 32


def test_auto_keeps_slow_items_in_small_units_and_grows_for_fast_ones() -> None:
    slow = UnitSize("auto", actors=1, units_in_flight=4, window_items=4096)
    feed(slow, 25)  # a large model: 0.25 s is 6 items
    assert slow.value == AUTO_MIN_ITEMS
    medium = UnitSize("auto", actors=2, units_in_flight=4, window_items=4096)
    feed(medium, 800)  # 400 items/s per actor: 100 a unit, in steps of 8
    assert medium.value == 96
    fast = UnitSize("auto", actors=1, units_in_flight=4, window_items=4096)
    feed(fast, 50_000)
    assert fast.value == AUTO_MAX_ITEMS


def test_auto_shrinks_again_when_items_slow_down() -> None:
    size = UnitSize("auto", actors=1, units_in_flight=4, window_items=4096)
    for k in range(41):  # 2,000 items/s for 4 s ...
        size.observe(0.1 * k, 200 * k)
    assert size.value == AUTO_MAX_ITEMS
    for k in range(1, 41):  # ... then 40 items/s for 4 s
        size.observe(4.0 + 0.1 * k, 8_000 + 4 * k)
    assert size.value == AUTO_MIN_ITEMS


def test_auto_units_fit_the_reorder_window_for_every_unit_in_flight() -> None:
    size = UnitSize("auto", actors=4, units_in_flight=4, window_items=1024)
    feed(size, 50_000)
    assert size.value == 1024 // (4 * 4)


class StepClock:
    """The dispatcher's ``time``, whose ``perf_counter`` (read once per unit done, to
    measure the rate) advances ``step_s`` per reading; the rest is the real clock."""

    monotonic = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)

    def __init__(self, step_s: float) -> None:
        self.step_s = step_s
        self.readings = 0

    def perf_counter(self) -> float:
        self.readings += 1
        return self.readings * self.step_s


def run_measured_at(
    step_s: float, images: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[RunSummary, list[int]]:
    """Run on ``images`` small images with the dispatcher's clock advancing ``step_s``
    per unit done; return the summary and the size of each unit, in completion order
    (from the progress callback: it runs after each unit the dispatcher takes)."""
    monkeypatch.setattr(_dispatch, "time", StepClock(step_s))
    write_images(tmp_path / "imgs", images)
    config = RunConfig.parse(
        job_config(
            tmp_path, input={"images": str(tmp_path / "imgs")}, cluster={"items_per_unit": "auto"}
        )
    )
    processed = [0]

    def note_unit(summary: RunSummary, total: int | None) -> None:
        if summary.processed != processed[-1]:
            processed.append(summary.processed)

    summary = run(config, progress=note_unit)
    assert read_results(tmp_path / "results").column("index").to_pylist() == list(range(images))
    assert summary.errors == 0 and summary.total == images
    assert summary.manifest["stats"]["items_per_unit"] == summary.items_per_unit
    return summary, [b - a for a, b in itertools.pairwise(processed)]


def test_a_run_measured_as_fast_grows_its_units_and_reports_the_size_reached(
    ray_session: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: the rate the dispatcher measures sizes the units that enumeration
    makes next, and the run reports (and the manifest records) the size reached.

    The measured rate is made fixed rather than left to the machine: a real run of
    small images is over in about a second, and whether its units grow then depends
    on how busy the cores are (this test used to fail on a loaded 2-core machine).
    Here each unit done advances the dispatcher's clock 10 ms: 8 items per 10 ms is
    800 items/s, 200 a unit, and more once units are larger.
    """
    summary, units = run_measured_at(0.01, 400, tmp_path, monkeypatch)
    assert sum(units) == 400
    assert units[:4] == [AUTO_MIN_ITEMS] * 4  # the first units, before any measurement
    assert units[-1] > AUTO_MIN_ITEMS  # the last ones larger
    assert summary.items_per_unit == AUTO_MAX_ITEMS


def test_a_run_measured_as_slow_keeps_its_units_small(
    ray_session: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As above, at one second per unit done: 8 items/s is 2 items in 0.25 s, so the
    units stay at the smallest size."""
    summary, units = run_measured_at(1.0, 120, tmp_path, monkeypatch)
    assert units == [AUTO_MIN_ITEMS] * (120 // AUTO_MIN_ITEMS)
    assert summary.items_per_unit == AUTO_MIN_ITEMS
