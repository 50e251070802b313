"""``items_per_unit: auto``: units grow with the measured speed, within the window."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _jobs import job_config, write_images

from distinfer import RunConfig, read_results, run
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
    feed(size, 2_000)
    assert size.value == AUTO_MAX_ITEMS
    t0, n0 = size.acks[-1]
    for k in range(1, 40):  # then 40 items/s for 4 s
        size.observe(t0 + 0.1 * k, n0 + 4 * k)
    assert size.value == AUTO_MIN_ITEMS


def test_auto_units_fit_the_reorder_window_for_every_unit_in_flight() -> None:
    size = UnitSize("auto", actors=4, units_in_flight=4, window_items=1024)
    feed(size, 50_000)
    assert size.value == 1024 // (4 * 4)


def test_a_run_of_small_fast_images_grows_its_units(ray_session: Any, tmp_path: Path) -> None:
    write_images(tmp_path / "imgs", 400)
    config = RunConfig.parse(
        job_config(
            tmp_path, input={"images": str(tmp_path / "imgs")}, cluster={"items_per_unit": "auto"}
        )
    )
    summary = run(config)
    assert summary.errors == 0 and summary.total == 400
    assert summary.items_per_unit > AUTO_MIN_ITEMS  # a tiny model runs far more than 32/s
    assert summary.manifest["stats"]["items_per_unit"] == summary.items_per_unit
    assert read_results(tmp_path / "results").column("index").to_pylist() == list(range(400))
