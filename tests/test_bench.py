"""``distinfer bench``: the figures come out as JSON, ratios computed from them.

No test here asserts on a speed: figures from a 2-core machine shared with
other work are noise at this size; only their presence and arithmetic are checked.
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from distinfer._bench import BenchOptions, Report, parse_modes
from distinfer._bench_dist import RunTiming
from distinfer._main import main


def bench(*args: str) -> tuple[int, dict[str, Any], str]:
    result = CliRunner().invoke(main, ["bench", *args, "--json"])
    lines = result.stdout.strip().splitlines()
    data = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    return result.exit_code, data, result.output


def test_engine_modes_report_every_figure_and_its_ratio_to_the_limit() -> None:
    code, data, output = bench(
        "--images", "4", "--seconds", "1", "--modes", "limit,sync,async,video,plain"
    )

    assert code == 0, output
    assert not data["failed"] and not data["skipped"]
    for mode in ("limit", "plain", "sync", "async", "video"):
        assert data[f"{mode}_fps"] > 0 and data[f"{mode}_cpu_ms_per_item"] > 0
    for mode in ("plain", "sync", "async", "video"):
        assert data[f"{mode}_ratio"] == pytest.approx(data[f"{mode}_fps"] / data["limit_fps"])
        assert data[f"{mode}_cpu_ratio"] == pytest.approx(
            data["limit_cpu_ms_per_item"] / data[f"{mode}_cpu_ms_per_item"]
        )
    assert data["video_vs_async"] == pytest.approx(data["video_fps"] / data["async_fps"])
    assert data["sync_vs_plain"] == pytest.approx(data["sync_fps"] / data["plain_fps"])
    assert set(data["targets"]) == {"async_vs_limit", "video_vs_async", "sync_vs_plain"}
    assert data["images"] == 4 and data["limit_infer_requests"] >= 1
    assert data["limit_fps"] == max(data["limit_fps_samples"])  # the highest limit is used
    assert "distinfer bench --modes async --model ppocr-det --images 4" in output


def test_a_mode_that_cannot_run_says_why_and_the_others_still_run() -> None:
    code, data, output = bench("--model", "ppocr", "--modes", "limit", "--seconds", "1")

    assert code == 0, output
    assert "chain of three models" in data["skipped"]["limit"]
    assert "skipped limit: ppocr is a chain" in output


def test_bad_options_are_usage_errors() -> None:
    assert bench("--modes", "warp")[0] == 2
    assert bench("--images", "0")[0] == 2


def test_mode_groups_expand_in_order_without_duplicates() -> None:
    assert parse_modes("engine") == ("limit", "plain", "sync", "async", "video")
    assert parse_modes("sync,all")[:2] == ("sync", "limit")
    assert len(parse_modes("all,ray")) == 10


def test_the_steady_window_leaves_out_the_burst_of_the_drain() -> None:
    times = iter([0.0, 2.0, 3.0, 4.0, 5.0, 5.1, 5.2])
    timing = RunTiming(clock=lambda: next(times))
    for items in (8, 16, 24, 32, 40, 48):
        timing(SimpleNamespace(processed=items), None)

    # the last 16 items were in flight together: the window ends at (4.0, 24)
    assert timing.steady_items_per_s(drain_items=16) == pytest.approx(16 / 2.0)
    assert timing.first_to_end_items_per_s() == pytest.approx(40 / 3.2)
    assert timing.steady_items_per_s(drain_items=48) is None


def test_targets_are_ratios_of_measured_values_and_missing_ones_are_left_out() -> None:
    report = Report(BenchOptions())
    report.add("limit", "limit_fps", 50.0, "images/s")
    report.add("async", "async_fps", 44.0, "images/s")
    report.target("async_vs_limit", "async_fps", "limit_fps", 0.90)
    report.target("video_vs_async", "video_fps", "async_fps", 0.95)

    (target,) = report.targets
    assert target.value == pytest.approx(0.88) and not target.met
    assert json.loads(report.to_json())["targets"]["async_vs_limit"]["met"] is False


def test_distributed_runs_report_the_median_run_against_the_limits_around_it(
    ray_session: Any,
) -> None:
    code, data, output = bench(
        "--modes", "distributed", "--images", "4", "--seconds", "0.5", "--repeat", "2"
    )

    assert code == 0, output
    assert data["distributed_items_per_s"] > 0 and data["distributed_wall_s"] > 0
    assert data["distributed_ray_started"] is False  # the suite's session was used
    limits, ratios = data["distributed_limit_fps_each"], data["distributed_vs_limit_each_run"]
    assert len(limits) == 3 and len(ratios) == 2  # before, between and after the runs
    k = ratios.index(min(ratios))  # the lower median of two
    assert data["distributed_limit_fps"] == max(limits[k : k + 2])
    assert data["distributed_vs_limit"] == pytest.approx(ratios[k])
    assert data["distributed_vs_limit"] == pytest.approx(
        data["distributed_items_per_s"] / data["distributed_limit_fps"]
    )
    assert data["distributed_cpu_ms_per_item"]["InferenceActor"] > 0


def test_the_raydata_mode_times_every_pipeline_and_judges_2x_against_ray_datas_guide(
    ray_session: Any,
) -> None:
    # In the suite's session (a fresh Ray per job only when none is running).
    code, data, output = bench("--modes", "raydata", "--images", "3", "--seconds", "0.5")

    assert code == 0, output
    assert data["failed"] == {}
    walls = data["raydata_rounds_wall_s"]  # each job checks that it wrote indices 0..2
    assert sorted(walls) == ["async_engine", "distinfer", "engine", "guide"]
    assert all(len(w) == 1 and w[0] > 0 for w in walls.values())
    ours, guide = data["distributed_session_items_per_s"], data["raydata_items_per_s"]
    assert ours == pytest.approx(3 / walls["distinfer"][0])
    assert guide == pytest.approx(3 / walls["guide"][0])
    target = data["targets"]["distributed_vs_raydata"]
    assert target["value"] == pytest.approx(ours / guide) and target["target"] == ">= 2.0"
    assert data["distributed_needed_for_2x_vs_limit"] == pytest.approx(
        2 * guide / data["raydata_limit_fps"]
    )
    # The machine's CPU by job: the ratio splits exactly into work per item x cores busy.
    cpu = data["raydata_cpu_rounds_s"]
    assert sorted(cpu) == sorted(walls) and all(c[0] > 0 for c in cpu.values())
    assert data["distributed_session_cpu_ms_per_item"] == pytest.approx(
        1e3 * cpu["distinfer"][0] / 3
    )
    assert data["raydata_cpu_ms_per_item"] == pytest.approx(1e3 * cpu["guide"][0] / 3)
    work = data["distributed_vs_raydata_work_factor"]
    busy = data["distributed_vs_raydata_busy_factor"]
    assert work == pytest.approx(cpu["guide"][0] / cpu["distinfer"][0])
    assert work * busy == pytest.approx(target["value"])
    cores = os.cpu_count() or 1
    most_ms = data["distributed_cpu_ms_per_item_for_2x"]
    assert most_ms == pytest.approx(1e3 * cores * walls["guide"][0] / (2 * 3))


def test_the_collector_mode_reports_each_unit_size_and_judges_the_target_at_64(
    ray_session: Any,
) -> None:
    code, data, output = bench("--modes", "collector", "--collector-rows", "1024")

    assert code == 0, output
    for n in (8, 64, 256):
        assert data[f"collector_results_per_s_{n}"] > 0
        assert data[f"collector_build_rows_per_s_{n}"] > 0
    assert data["collector_transport_rows_per_s_64"] > 0
    target = data["targets"]["collector_results_per_s"]
    assert target["value"] == data["collector_results_per_s_64"]
    assert target["target"] == ">= 20000.0"
