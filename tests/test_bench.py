"""``distinfer bench``: the figures come out as JSON, ratios computed from them.

No test here asserts on a speed: figures from a 2-core machine shared with
other work are noise at this size; only their presence and arithmetic are
checked, the commands at the smallest sizes that run every code path.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from distinfer._main import main
from distinfer.bench import BenchOptions, Report, RunTiming, Sample, parse_modes
from distinfer.bench._engine_modes import report_engine
from distinfer.bench._host import _host_thread_times, _thread_times

#: Whether this system gives each thread's scheduler times (Linux's schedstat).
SCHEDSTAT = Path(f"/proc/self/task/{threading.get_native_id()}/schedstat").is_file()


def bench(*args: str) -> tuple[int, dict[str, Any], str]:
    result = CliRunner().invoke(main, ["bench", *args, "--json"])
    lines = result.stdout.strip().splitlines()
    data = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    return result.exit_code, data, result.output


def test_the_engine_modes_report_each_figure_and_its_ratio_to_the_highest_limit() -> None:
    code, data, output = bench("--images", "2", "--seconds", "0.5", "--modes", "limit,sync")

    assert code == 0, output
    assert not data["failed"] and not data["skipped"]
    assert data["images"] == 2 and data["limit_infer_requests"] >= 1
    assert data["sync_fps"] > 0 and data["sync_cpu_ms_per_item"] > 0
    assert data["sync_ratio"] == pytest.approx(data["sync_fps"] / data["limit_fps"])
    assert data["sync_cpu_ratio"] == pytest.approx(
        data["limit_cpu_ms_per_item"] / data["sync_cpu_ms_per_item"]
    )
    assert len(data["limit_fps_samples"]) == 2  # once per round and once at the end
    assert data["limit_fps"] == max(data["limit_fps_samples"])
    assert data["commands"]["sync"] == "distinfer bench --modes sync --model ppocr-det --images 2"
    assert "$ distinfer bench --modes limit --model ppocr-det --seconds 0.5" in output


def test_openvino_properties_set_on_the_command_line_compile_every_mode_and_the_limit() -> None:
    one_thread = "model.openvino.INFERENCE_NUM_THREADS=1"
    code, data, output = bench(
        "--images", "2", "--seconds", "0.5", "--modes", "limit,sync", "--set", one_thread
    )  # fmt: skip

    assert code == 0, output
    # One thread is one stream: OpenVINO's optimal request count is then 1 (the limit's),
    # and the engine keeps two requests for its one stream.
    assert data["limit_infer_requests"] == 1 and data["engine_infer_requests"] == 2
    assert data["commands"]["sync"].endswith(f"--images 2 --set {one_thread}")


def test_a_mode_that_cannot_run_says_why_and_the_others_still_run() -> None:
    code, data, output = bench("--model", "ppocr", "--modes", "limit", "--seconds", "1")

    assert code == 0, output
    assert "chain of three models" in data["skipped"]["limit"]
    assert "skipped limit: ppocr is a chain" in output


@pytest.mark.parametrize(
    "args",
    [
        ("--modes", "warp"),
        ("--modes", "raydata"),  # moved to benchmarks/
        ("--images", "0"),
        ("--crops", "10"),
        ("--collector-rows", "10"),
        ("--memory-sizes", "1,2"),
    ],
)
def test_bad_options_and_the_moved_modes_are_usage_errors(args: tuple[str, ...]) -> None:
    assert bench(*args)[0] == 2


def test_mode_groups_expand_in_order_without_duplicates() -> None:
    assert parse_modes("engine") == ("limit", "plain", "sync", "async", "video")
    assert parse_modes("sync,all") == (
        *("sync", "limit", "plain", "async", "video", "host", "distributed"),
    )


def test_the_host_mode_reports_cpu_per_page_outside_decode_and_the_gil_or_why_not() -> None:
    code, data, output = bench("--modes", "host", "--images", "3", "--repeat", "2")

    assert code == 0, output
    assert not data["failed"]
    parts = [data[f"host_{p}_cpu_ms_per_item"] for p in ("decode", "predict", "rows")]
    assert all(p > 0 for p in parts)
    samples = data["host_cpu_ms_per_item_samples"]
    assert len(samples) == 2 and data["host_cpu_ms_per_item"] == pytest.approx(
        sum(samples) / 2  # the median of two
    )
    for i in range(2):  # outside decode: pre- and post-processing and the rows
        assert samples[i] == pytest.approx(
            data["host_predict_cpu_ms_per_item_samples"][i]
            + data["host_rows_cpu_ms_per_item_samples"][i]
        )
    if "host gil" in data["skipped"]:  # py-spy is optional
        assert "py-spy" in data["skipped"]["host gil"]
    else:
        gil = data["host_gil_ms_per_item"]  # 3 pages: a few samples, maybe none
        assert gil == 0 or data["host_gil_pages_per_s_ceiling"] == pytest.approx(1e3 / gil)
        if SCHEDSTAT:  # the host threads decoded and post-processed 3 pages
            assert data["host_threads_run_ms_per_item"] > 0
            assert data["host_threads_wait_ms_per_item"] >= 0
    assert data["commands"]["host"] == (
        "distinfer bench --modes host --model ppocr-det --images 3 --repeat 2"
    )


@pytest.mark.skipif(not SCHEDSTAT, reason="no /proc/self/task/*/schedstat here")
def test_host_thread_times_count_the_engines_host_threads_only() -> None:
    spun, release = threading.Semaphore(0), threading.Event()

    def spin(cpu_s: float) -> None:
        start = time.thread_time()
        while time.thread_time() - start < cpu_s:
            pass
        spun.release()
        release.wait()  # alive until read: a thread's times go with it

    before = _thread_times()
    threads = [
        threading.Thread(target=spin, args=(0.05,), name="distinfer-host_0"),
        threading.Thread(target=spin, args=(0.3,), name="someone-else"),
    ]
    for thread in threads:
        thread.start()
    for _ in threads:
        spun.acquire()
    spent = _host_thread_times(before, _thread_times())
    release.set()
    for thread in threads:
        thread.join()
    assert spent is not None
    run, wait = spent
    assert 45 <= run < 250 and wait >= 0  # the host thread's 50 ms, not the other's 300


def test_each_mode_reports_its_median_against_the_highest_limit_sample() -> None:
    report = Report(BenchOptions())
    samples = {
        "limit": [Sample(40.0, 25.0), Sample(50.0, 20.0), Sample(45.0, 22.0)],
        "async": [Sample(44.0, 30.0), Sample(40.0, 32.0), Sample(46.0, 28.0)],
        "video": [Sample(43.0, 30.0)],
    }

    report_engine(report, samples)

    values = report.values
    assert values["limit_fps"] == 50.0 and values["limit_cpu_ms_per_item"] == 20.0
    assert values["async_fps"] == 44.0 and values["async_cpu_ms_per_item"] == 30.0
    assert values["async_ratio"] == pytest.approx(44.0 / 50.0)
    assert values["async_cpu_ratio"] == pytest.approx(20.0 / 30.0)
    assert values["async_fps_samples"] == [44.0, 40.0, 46.0]
    assert "video_fps_samples" not in values  # one round: no samples list
    targets = {t.name: t for t in report.targets}
    assert set(targets) == {"async_vs_limit", "video_vs_async"}  # no plain: no sync_vs_plain
    assert targets["async_vs_limit"].value == pytest.approx(0.88)
    assert not targets["async_vs_limit"].met
    assert targets["video_vs_async"].value == pytest.approx(43.0 / 44.0)
    assert targets["video_vs_async"].met


def test_targets_are_ratios_of_measured_values_and_missing_ones_are_left_out() -> None:
    report = Report(BenchOptions())
    report.add("limit", "limit_fps", 50.0, "images/s")
    report.add("async", "async_fps", 44.0, "images/s")
    report.target("async_vs_limit", "async_fps", "limit_fps", 0.90)
    report.target("video_vs_async", "video_fps", "async_fps", 0.95)
    report.target("collector", "collector_rows_per_s", None, 10.0)  # not measured
    report.target("memory", "limit_fps", None, 60.0, "<=")  # on a value itself

    assert [t.name for t in report.targets] == ["async_vs_limit", "memory"]
    doc = json.loads(report.to_json())
    assert doc["targets"]["async_vs_limit"] == {"value": 0.88, "target": ">= 0.9", "met": False}
    assert doc["targets"]["memory"]["met"] is True
    assert doc["commands"] == {m: BenchOptions().command(m) for m in BenchOptions().modes}


def test_the_steady_window_leaves_out_the_burst_of_the_drain() -> None:
    times = iter([0.0, 2.0, 3.0, 4.0, 5.0, 5.1, 5.2])
    timing = RunTiming(clock=lambda: next(times))
    for items in (8, 16, 24, 32, 40, 48):
        timing(SimpleNamespace(processed=items), None)

    # the last 16 items were in flight together: the window ends at (4.0, 24)
    assert timing.steady_items_per_s(drain_items=16) == pytest.approx(16 / 2.0)
    assert timing.first_to_end_items_per_s() == pytest.approx(40 / 3.2)
    assert timing.steady_items_per_s(drain_items=48) is None


def test_a_distributed_run_is_reported_against_the_limits_around_it(ray_session: Any) -> None:
    code, data, output = bench("--modes", "distributed", "--images", "2", "--seconds", "0.5")

    assert code == 0, output
    assert data["distributed_ray_started"] is False  # the suite's session was used
    limits, ratios = data["distributed_limit_fps_each"], data["distributed_vs_limit_each_run"]
    assert len(limits) == 2 and len(ratios) == 1  # before and after the run
    assert data["distributed_limit_fps"] == max(limits)
    assert data["distributed_vs_limit"] == pytest.approx(ratios[0])
    assert data["distributed_vs_limit"] == pytest.approx(
        data["distributed_items_per_s"] / data["distributed_limit_fps"]
    )
    assert data["distributed_wall_s"] > 0
    assert "distributed_cpu_ms_per_item" not in data  # per-process CPU: benchmarks/ only
