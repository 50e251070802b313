"""The Ray modes of ``distinfer bench``: distributed runs, Ray Data, collector, memory.

- ``distributed``: ``distinfer.run`` on the bench pages (an embedded local Ray
  when none is running), between two limit measurements (the higher is used);
  with ``--repeat N``, N runs and the one with the median ratio.
  The ratio uses the steady rate, from the first result to the start of the
  drain; the rate from the first result to the end and the whole wall time (Ray
  start, actor start, Parquet commit, shutdown) are reported beside it, with the
  CPU time per item of every process of the run;
- ``raydata``: ``read_images -> map_batches(actor pool) -> write_parquet`` as Ray
  Data's batch-inference guide writes it, running the same task, against a
  ``distinfer.run`` of the same pages in the same Ray session (both from job
  start to the last file written); beside it Ray Data given distinfer's own
  decode and engine (sync pool, and one async actor);
- ``cls``: the small ``ppocr-cls`` model on rendered text-line crops, distributed
  like ``distributed``, against its own bare-model limit: per-item overhead;
- ``collector``: the ``OrderedCollector`` actor alone, fed realistic rows as
  Arrow batches in shuffled units by a few sender actors (8, 64 and 256 rows a
  call: one unit of ``items_per_unit`` items; the target is judged at 64); beside
  it the Ray transport alone (a no-op actor), and the Arrow conversion (the
  actors' cost) and the Parquet write alone, to show where the time goes;
- ``memory``: peak RSS (VmHWM) of the driver and of the collector for two run
  sizes, each run in a fresh process (a process's peak only grows).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._bench import (
    BenchOptions,
    BenchSkipped,
    Echo,
    Report,
    bare_model,
    cpu_seconds,
    guard,
    image_paths,
    measure_limit,
    timed,
)

logger = logging.getLogger(__name__)

#: Rows per ``collector.add`` call: one unit, ``cluster.items_per_unit`` items. 8 is the
#: default; 64 what a run of a small model (ms per item) would use; 256 shows the trend.
COLLECTOR_ROWS_PER_CALL = (8, 64, 256)
#: The collector target (>= 20,000 rows/s) is judged at this size.
COLLECTOR_TARGET_ROWS_PER_CALL = 64
COLLECTOR_TRANSPORT_ROWS_PER_CALL = (8, 64)
COLLECTOR_SENDERS = 4
#: Ray Data's batch: 32 ran faster than 8 (our unit size) in trials here; Ray Data gets the best.
RAYDATA_BATCH_ROWS = 32
#: The Ray Data pipelines timed: Ray's batch-inference guide (the target's baseline),
#: then Ray Data given distinfer's sync engine, and its async engine.
RAYDATA_VARIANTS = ("guide", "engine", "async_engine")
#: Seconds a fresh local Ray is left idle before a job of ``raydata_mode``.
RAYDATA_SETTLE_S = 3.0
#: Units are shuffled within windows of this many rows (the driver's reorder bound).
COLLECTOR_WINDOW_ROWS = 4096
MEMORY_IMAGE_SIZE = 32
MEMORY_SAMPLE_INTERVAL_S = 0.1
MEMORY_CHILD_TIMEOUT_S = 1800


# -- distributed runs ----------------------------------------------------------------


@dataclass
class RunTiming:
    """A ``run`` progress function that notes when each unit's results arrive."""

    clock: Callable[[], float] = time.perf_counter
    acks: list[tuple[float, int]] = field(default_factory=list)  # (time, items so far)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def __call__(self, summary: Any, total: int | None) -> None:
        if summary.processed > (self.acks[-1][1] if self.acks else 0):
            self.acks.append((self.clock(), summary.processed))

    def steady_items_per_s(self, drain_items: int) -> float | None:
        """Items per second with the pipeline full at both ends of the window.

        Items of several units run interleaved in an actor, so when the first unit
        is acknowledged the others in flight are partly done, and the last
        ``drain_items`` (all in flight at once) finish in a burst. The window runs
        from the first acknowledgement to the last one before that drain, where the
        work in flight is the same; None when the window holds fewer items than the
        drain (too short to mean anything).
        """
        if not self.acks:
            return None
        t0, n0 = self.acks[0]
        end = [(t, n) for t, n in self.acks if n <= self.acks[-1][1] - drain_items and t > t0]
        if not end:
            return None
        t1, n1 = end[-1]
        return (n1 - n0) / (t1 - t0) if n1 - n0 >= drain_items else None

    def first_to_end_items_per_s(self) -> float | None:
        """Items after the first acknowledgement over the time from it to the last."""
        if len(self.acks) < 2:
            return None
        (t0, n0), (t1, n1) = self.acks[0], self.acks[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else None


@dataclass(frozen=True)
class RunFigures:
    items: int
    wall_s: float
    first_result_s: float | None
    steady_items_per_s: float | None
    first_to_end_items_per_s: float | None
    cpu_s: dict[str, float] = field(default_factory=dict)  # by process title, whole run
    peak_mb: dict[str, float] = field(default_factory=dict)  # VmHWM, by process title

    @property
    def wall_items_per_s(self) -> float:
        return self.items / self.wall_s


def _run_config(model: str, images: Path, out: Path, overrides: Sequence[str]) -> Any:
    from ._config import RunConfig
    from .models._bundled import BUNDLED_MODELS

    section = {"name": model} if model in BUNDLED_MODELS else {"path": str(Path(model).resolve())}
    return RunConfig.parse(
        {
            "model": section,
            "input": {"images": str(images)},
            "output": {"parquet": str(out)},
            "cluster": {"progress": "off"},
        },
        overrides,
    )


def timed_run(
    model: str, images: Path, out: Path, overrides: Sequence[str], watch_s: float | None = 0.2
) -> RunFigures:
    """One ``distinfer.run`` of ``model`` over ``images``; every item must succeed.

    Its processes are sampled every ``watch_s`` seconds (CPU time, peak RSS);
    None: not watched, as a run compared with others that are not."""
    from .distributed._driver import run

    config = _run_config(model, images, out, overrides)
    timing = RunTiming()
    watch = ProcessWatch(watch_s) if watch_s is not None else None
    with watch or contextlib.nullcontext():
        summary = run(config, overwrite=True, progress=timing)
    wall = time.perf_counter() - timing.started
    if summary.aborted or summary.errors or summary.total != summary.processed:
        raise RuntimeError(
            f"run of {model} on {images}: {summary.errors} errors of {summary.total} "
            f"({summary.aborted or 'not aborted'}); first: {summary.error_samples[:1]}"
        )
    first = timing.acks[0][0] - timing.started if timing.acks else None
    cluster = config.cluster
    drain = cluster.units_in_flight_per_actor * summary.items_per_unit * max(1, len(summary.nodes))
    return RunFigures(
        summary.total,
        wall,
        first,
        timing.steady_items_per_s(drain),
        timing.first_to_end_items_per_s(),
        watch.cpu_s_by_title() if watch else {},
        watch.peak_mb_by_title() if watch else {},
    )


def bracketed_run(
    options: BenchOptions, report: Report, mode: str, model: str, images: Path, out: Path
) -> None:
    """Timed runs between limit measurements of the same model, reported as ``mode``.

    With ``--repeat N``, N runs with a limit measured before, between and after
    them; each run's ratio uses the higher of the two limits around it (when
    other work slows the machine down for part of the time, a ratio errs low,
    never high), and the run with the median ratio is reported, every ratio
    beside it.
    """
    bare = bare_model(model, image_paths(images)[0].read_bytes())
    limits = [measure_limit(bare, options.seconds, options.device)[0]]
    runs = []
    for _ in range(options.repeat):
        figures = timed_run(model, images, out, options.overrides)
        limits.append(measure_limit(bare, options.seconds, options.device)[0])
        limit = max(limits[-2:], key=lambda s: s.fps)
        steady = figures.steady_items_per_s
        runs.append((figures, limit, figures.wall_items_per_s if steady is None else steady))
    ratios = [rate / limit.fps for _, limit, rate in runs]
    figures, limit, steady = runs[ratios.index(statistics.median_low(ratios))]
    report.values[f"{mode}_limit_fps_each"] = [s.fps for s in limits]
    report.values[f"{mode}_vs_limit_each_run"] = ratios
    report.add(mode, f"{mode}_limit_fps", limit.fps, "images/s, bare model, max of 2")
    if figures.steady_items_per_s is None:
        report.notes[mode] = "run too short for a steady window: the wall rate stands in"
    if len(runs) > 1:
        shown = ", ".join(f"{r:.3f}" for r in ratios)
        report.notes[f"{mode} runs"] = f"steady / limit of each run: {shown}; the median is shown"
    rates = [
        ("items_per_s", steady, "items/s, steady (pipeline full)"),
        ("first_to_end_items_per_s", figures.first_to_end_items_per_s, "items/s, 1st result->end"),
        ("wall_items_per_s", figures.wall_items_per_s, "items/s, whole wall"),
    ]
    for key, value, label in rates:
        if value is not None:
            report.add(mode, f"{mode}_{key}", value, label, f"{value / limit.fps:.3f} x limit")
    report.add(mode, f"{mode}_wall_s", figures.wall_s, "s")
    if figures.first_result_s is not None:
        report.add(mode, f"{mode}_first_result_s", figures.first_result_s, "s")
    cpu = {
        k: 1e3 * v / figures.items for k, v in sorted(figures.cpu_s.items(), key=lambda kv: -kv[1])
    }
    report.values[f"{mode}_cpu_ms_per_item"] = cpu
    total = sum(cpu.values())
    vs = f"{limit.cpu_ms / total:.3f} limit/run"
    report.add(mode, f"{mode}_cpu_ms_per_item_total", total, "ms CPU/item, all processes", vs)
    report.values[f"{mode}_limit_cpu_ms_per_item"] = limit.cpu_ms
    for title, ms in list(cpu.items())[:4]:
        report.rows.append((mode, f"  of which {title}", ms, "ms CPU/item", ""))
    bound = 0.85 if mode == "distributed" else 0.5
    report.target(f"{mode}_vs_limit", f"{mode}_items_per_s", f"{mode}_limit_fps", bound)


def distributed_mode(options: BenchOptions, report: Report, pages: Path, workdir: Path) -> None:
    import ray

    report.values["distributed_ray_started"] = started = not ray.is_initialized()
    out = workdir / "distributed"
    bracketed_run(options, report, "distributed", options.model, pages, out)
    report.notes["distributed"] = (
        "whole wall and CPU "
        + ("include Ray's start and shutdown" if started else "(Ray was up)")
        + "; the ratio to limit uses the steady rate (first result to the start of the drain)"
    )


def cls_mode(options: BenchOptions, report: Report, workdir: Path) -> None:
    import cv2

    from ._demo import render_crops

    folder = workdir / "crops"
    folder.mkdir(exist_ok=True)
    for i, crop in enumerate(render_crops(np.random.default_rng(0), options.crops)):
        cv2.imwrite(str(folder / f"crop_{i:06d}.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    bracketed_run(options, report, "cls", "ppocr-cls", folder, workdir / "cls")


# -- Ray Data -------------------------------------------------------------------------


class RayDataEngine:
    """``map_batches`` callable: the same task (pre/post-processing included) in Ray Data.

    ``asynchronous=False`` is the Ray Data idiom: a pool of predictors, each
    inferring the images of its batch one at a time (the batch, not the
    request, is the unit of parallelism). ``asynchronous=True`` gives Ray Data
    distinfer's async engine as well, for comparison.
    """

    def __init__(self, model: str, indices: dict[str, int], asynchronous: bool) -> None:
        from .engine._engine import Engine
        from .models import task_from_model

        self.engine = Engine(task_from_model(model), latency=not asynchronous).start()
        self.indices = indices
        self.asynchronous = asynchronous

    def __call__(self, batch: dict[str, Any]) -> Any:
        import pyarrow as pa

        from .engine._prediction import RESULT_SCHEMA

        paths = [str(p) for p in batch["path"]]
        rows: list[dict[str, Any] | None] = [None] * len(paths)
        left = threading.Semaphore(0)

        def finisher(k: int) -> Callable[[Any, Any], None]:
            def done(outcome: Any, pixels: Any) -> None:
                rows[k] = _raydata_row(self.indices, paths[k], outcome)
                left.release()

            return done

        for k, data in enumerate(batch["bytes"]):
            if self.asynchronous:
                self.engine.submit(bytes(data), finisher(k))
                continue
            try:
                outcome: Any = self.engine.predict(bytes(data))
            except Exception as exc:  # noqa: BLE001 - this image's error row
                outcome = exc
            finisher(k)(outcome, None)
        for _ in paths:
            left.acquire()
        return pa.Table.from_pylist(rows, schema=RESULT_SCHEMA)


class RayDataPredictor:
    """``map_batches`` callable as Ray Data's batch-inference guide writes it.

    Images come decoded by ``read_images``; each is run through the same task
    (the same letterbox, in-graph preprocessing and DB post-processing as
    distinfer) with a blocking call of the model compiled with OpenVINO's
    default configuration, one image at a time. Like distinfer, it compiles
    each of the task's graphs (input shapes) on first use only.
    """

    def __init__(self, model: str, indices: dict[str, int]) -> None:
        import openvino as ov

        from .models import task_from_model

        self.task = task_from_model(model)
        self.core = ov.Core()
        self.graphs = self.task.graphs()
        self.compiled: dict[str, Any] = {}
        self.indices = indices

    def infer(self, stage: str, inputs: Sequence[Any]) -> list[list[Any]]:
        if stage not in self.compiled:
            self.compiled[stage] = self.core.compile_model(self.graphs[stage])
        compiled = self.compiled[stage]
        return [list(compiled(np.ascontiguousarray(x[None])).values()) for x in inputs]

    def __call__(self, batch: dict[str, Any]) -> Any:
        import pyarrow as pa

        from .engine._prediction import RESULT_SCHEMA

        rows = []
        for image, path in zip(batch["image"], batch["path"], strict=True):
            try:
                outcome: Any = self.task.predict(
                    image, self.infer, (image.shape[1], image.shape[0])
                )
            except Exception as exc:  # noqa: BLE001 - this image's error row
                outcome = exc
            rows.append(_raydata_row(self.indices, str(path), outcome))
        return pa.Table.from_pylist(rows, schema=RESULT_SCHEMA)


def _raydata_row(indices: dict[str, int], path: str, outcome: Any) -> dict[str, Any]:
    """The result row of one image of a Ray Data baseline (its index from its path)."""
    from .distributed._rows import describe, error_row, result_row

    index = indices.get(path.lstrip("/"), -1)
    if isinstance(outcome, BaseException):
        return error_row(index, path, None, describe(outcome), "raydata")
    return result_row(index, path, None, outcome, "raydata")


def raydata_mode(options: BenchOptions, report: Report, pages: Path, workdir: Path) -> None:
    """distinfer and the Ray Data pipelines on the same pages, each job in a fresh Ray.

    A job in a session that ran another leaves the next one worse off: Ray Data
    keeps its coordinator actors and its workers' processes, so a job after it
    waits for new worker processes. Each job here gets a new local Ray, idle for
    ``RAYDATA_SETTLE_S`` (Ray starts its worker processes then), as a job
    submitted to an idle cluster finds it. With ``--repeat N`` the jobs run
    interleaved N times and each keeps its median.
    """
    from .distributed._ray import ray_session, use_loopback

    use_loopback()  # before anything imports ray
    try:
        import ray.data
    except ImportError as exc:
        raise BenchSkipped(f"Ray Data is missing ({exc}); pip install 'distinfer[bench]'") from exc
    paths = image_paths(pages)
    context = ray.data.DataContext.get_current()
    quiet = {"enable_progress_bars": False, "print_on_execution_start": False}
    saved = {name: getattr(context, name) for name in quiet}
    for name, value in quiet.items():
        setattr(context, name, value)
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # a line per dataset otherwise
    rounds: dict[str, list[float]] = {name: [] for name in ("distinfer", *RAYDATA_VARIANTS)}
    cpu_rounds: dict[str, list[float]] = {name: [] for name in rounds}
    bare = bare_model(options.model, paths[0].read_bytes())
    before, _ = measure_limit(bare, options.seconds, options.device)
    try:
        for n in range(options.repeat):
            for job in rounds:
                fresh = not ray.is_initialized()  # else a session we were given (tests)
                with ray_session(None) as ray:
                    time.sleep(RAYDATA_SETTLE_S if fresh else 0.0)
                    cpus = int(ray.cluster_resources().get("CPU", 1))
                    busy = cpu_seconds()  # the whole machine's, so every process of a job
                    if job == "distinfer":
                        figures = timed_run(  # unwatched, like the Ray Data jobs
                            options.model, pages, workdir / "session", options.overrides, None
                        )
                        rounds[job].append(figures.wall_s)
                    else:
                        out = workdir / f"{job}-{n}"  # Ray Data adds files to a folder
                        rounds[job].append(_raydata_job(ray, options.model, paths, cpus, out, job))
                    if busy is not None and (done := cpu_seconds()) is not None:
                        cpu_rounds[job].append(done[1] - busy[1])
    finally:
        for name, value in saved.items():
            setattr(context, name, value)
    after, _ = measure_limit(bare, options.seconds, options.device)
    limit = max(before.fps, after.fps)
    report.add("raydata", "raydata_limit_fps", limit, "images/s, bare model, max of 2")
    limit_cpu_ms = min(before.cpu_ms, after.cpu_ms)
    walls = {name: statistics.median(values) for name, values in rounds.items()}
    report.values["raydata_rounds_wall_s"] = rounds
    ours_wall = walls["distinfer"]
    labels = {
        "distinfer": "items/s, job wall, Ray up",
        "guide": "items/s, job wall, Ray up",
        "engine": "items/s, predictors running distinfer's sync engine",
        "async_engine": "items/s, one actor running distinfer's async engine",
    }
    for job, wall in walls.items():
        rate = len(paths) / wall
        vs = f"{rate / limit:.3f} x limit"
        if job != "distinfer":
            vs += f"; distinfer {wall / ours_wall:.2f}x"
        report.add("raydata", f"{_RAYDATA_KEYS[job]}_items_per_s", rate, labels[job], vs)
    ours = report.values["distributed_session_items_per_s"]
    if all(cpu_rounds.values()):  # else no /proc/stat
        _report_raydata_cpu(report, cpu_rounds, walls, len(paths), limit_cpu_ms)
    # What the 2x target asks of distinfer, in this run: twice Ray Data's share of the limit.
    report.values["distributed_needed_for_2x_vs_limit"] = 2 * len(paths) / walls["guide"] / limit
    report.ratio(
        "distributed_vs_raydata_engine",
        "distributed_session_items_per_s",
        "raydata_engine_items_per_s",
    )
    pool = max(1, cpus - 1)
    needed = report.values["distributed_needed_for_2x_vs_limit"]
    report.notes["raydata"] = (
        f"2x Ray Data asks distinfer for {needed:.2f} x the limit on job wall (start-up "
        f"included) in this run; it ran at {ours / limit:.2f}. "
        f"Each job in a fresh local Ray, idle for {RAYDATA_SETTLE_S:g} s before it starts; "
        f"raydata: Ray Data's batch-inference guide: read_images -> map_batches with a pool of "
        f"{pool} predictor actors (1 CPU each, one CPU left for reading) running the same task "
        "(letterbox, in-graph preprocessing, DB post-processing) with one blocking call per "
        "image of the model compiled with OpenVINO's defaults; raydata_engine: the same pool "
        "reading bytes (read_binary_files) and running distinfer's own decode and LATENCY-hint "
        "engine; raydata_async_engine: one actor running distinfer's async engine. "
        f"batch_size={RAYDATA_BATCH_ROWS}, write_parquet; every run timed from job start "
        "(actor start and model compile included) to the last file written"
    )
    report.target(
        "distributed_vs_raydata", "distributed_session_items_per_s", "raydata_items_per_s", 2.0
    )


#: Report keys of the raydata mode's jobs.
_RAYDATA_KEYS = {
    "distinfer": "distributed_session",
    "guide": "raydata",
    "engine": "raydata_engine",
    "async_engine": "raydata_async_engine",
}


def _report_raydata_cpu(
    report: Report,
    cpu_rounds: dict[str, list[float]],
    walls: dict[str, float],
    items: int,
    limit_cpu_ms: float,
) -> None:
    """Each job's machine CPU per item and cores kept busy (medians of the rounds).

    A rate is cores busy / CPU per item, so distinfer / Ray Data's guide splits
    exactly into the guide's CPU per item over distinfer's (work per item) times
    distinfer's cores busy over the guide's (idle cores: start-up, stalls). With
    every core busy, 2x the guide caps distinfer's CPU per item.
    """
    cpu = {job: statistics.median(values) / items for job, values in cpu_rounds.items()}
    busy = {job: cpu[job] * items / walls[job] for job in cpu}
    for job in cpu:
        key = f"{_RAYDATA_KEYS[job]}_cpu_ms_per_item"
        label = "ms CPU/item, whole machine"
        report.add("raydata", key, 1e3 * cpu[job], label, f"{busy[job]:.2f} cores busy")
    report.values["raydata_cpu_rounds_s"] = cpu_rounds
    work, busier = cpu["guide"] / cpu["distinfer"], busy["distinfer"] / busy["guide"]
    report.values["distributed_vs_raydata_work_factor"] = work
    report.values["distributed_vs_raydata_busy_factor"] = busier
    cores = os.cpu_count() or 1
    most_ms = 1e3 * cores * walls["guide"] / (2 * items)
    report.values["distributed_cpu_ms_per_item_for_2x"] = most_ms
    report.notes["raydata_cpu"] = (
        f"distinfer / Ray Data's guide = {work:.2f} (the guide's CPU per item over "
        f"distinfer's) x {busier:.2f} (the cores distinfer keeps busy over the guide's). "
        f"With all {cores} cores busy, 2x the guide needs distinfer's whole job at <= "
        f"{most_ms:.1f} ms CPU per item; the bare model's inference alone takes "
        f"{limit_cpu_ms:.1f} ms per item"
    )


def _raydata_job(
    ray: Any, model: str, paths: Sequence[Path], cpus: int, out: Path, variant: str
) -> float:
    """One Ray Data pipeline over ``paths`` (see ``RAYDATA_VARIANTS``); its wall time."""
    indices = {str(p.resolve()).lstrip("/"): i for i, p in enumerate(paths)}
    files = [str(p) for p in paths]
    pool = max(1, cpus - 1)
    started = time.perf_counter()
    pool_of = ray.data.ActorPoolStrategy
    if variant == "guide":
        dataset = ray.data.read_images(files, include_paths=True, mode="RGB").map_batches(
            RayDataPredictor,
            fn_constructor_kwargs={"model": model, "indices": indices},
            batch_size=RAYDATA_BATCH_ROWS,
            compute=pool_of(size=pool),
            num_cpus=1,
            batch_format="numpy",
        )
    else:
        asynchronous = variant == "async_engine"
        dataset = ray.data.read_binary_files(files, include_paths=True).map_batches(
            RayDataEngine,
            fn_constructor_kwargs={
                "model": model,
                "indices": indices,
                "asynchronous": asynchronous,
            },
            batch_size=RAYDATA_BATCH_ROWS,
            compute=pool_of(size=1 if asynchronous else pool),
            num_cpus=pool if asynchronous else 1,
            batch_format="numpy",
        )
    dataset.write_parquet(str(out))
    wall = time.perf_counter() - started
    import pyarrow.parquet as pq

    written = sorted(pq.read_table(out, columns=["index"]).column("index").to_pylist())
    if written != list(range(len(paths))):
        raise RuntimeError(f"Ray Data wrote {len(written)} rows, not indices 0..{len(paths) - 1}")
    return wall


# -- the collector -------------------------------------------------------------------


def realistic_rows(count: int, boxes: int = 5) -> list[dict[str, Any]]:
    """``RESULT_SCHEMA`` rows like a text detector's: ``boxes`` quads each."""
    from .distributed._rows import result_row
    from .engine._prediction import Annotation, Prediction

    rng = np.random.default_rng(0)
    rows = []
    for i in range(count):
        annotations = []
        for _ in range(boxes):
            x, y = rng.uniform(0, 1000), rng.uniform(0, 900)
            w, h = rng.uniform(50, 250), rng.uniform(15, 40)
            quad = (x, y, x + w, y, x + w, y + h, x, y + h)
            annotations.append(
                Annotation("text", float(rng.uniform(0.5, 1)), (x, y, x + w, y + h), polygon=quad)
            )
        prediction = Prediction(annotations, width=1280, height=960)
        rows.append(result_row(i, f"/data/pages/page_{i:05d}.jpg", None, prediction, "node-0"))
    return rows


class RowSender:
    """A stand-in for an inference actor: sends units of rows, two calls in flight.

    The rows of each size are converted to Arrow once; a unit only gets its own
    index column. What converting costs an actor is measured on its own
    (``collector_build_rows_per_s_<n>``): on a real cluster it is spent on the
    actors' nodes, not the collector's.
    """

    def __init__(self, templates: list[dict[str, Any]]) -> None:
        self.templates = templates

    def send(self, sink: Any, firsts: Sequence[int], rows_per_call: int, total: int) -> int:
        import pyarrow as pa
        import ray

        from .distributed._rows import ResultBatch
        from .engine._prediction import RESULT_SCHEMA

        template = ResultBatch.from_rows(self.templates[:rows_per_call]).records
        pending: deque[Any] = deque()
        for first in firsts:
            n = min(rows_per_call, total - first)
            index = pa.array(np.arange(first, first + n, dtype=np.int64))
            columns = [index, *(c.slice(0, n) for c in template.columns[1:])]
            batch = ResultBatch(pa.RecordBatch.from_arrays(columns, schema=RESULT_SCHEMA))
            pending.append(sink.add.remote(batch))
            if len(pending) > 1:  # an actor thread waits for its add() before the next unit
                ray.get(pending.popleft())
        ray.get(list(pending))
        return len(firsts)


class NullSink:
    """Receives batches and drops them: the Ray transport (and batch check) alone."""

    def add(self, batch: Any) -> tuple[str, int]:
        return "null", len(batch)


def _send_all(senders: Sequence[Any], sink: Any, total: int, rows_per_call: int) -> float:
    """Feed ``total`` rows to ``sink`` from ``senders`` in shuffled units; return seconds."""
    import ray

    firsts = list(range(0, total, rows_per_call))
    window = max(1, COLLECTOR_WINDOW_ROWS // rows_per_call)
    rng = random.Random(0)
    for start in range(0, len(firsts), window):
        chunk = firsts[start : start + window]
        rng.shuffle(chunk)
        firsts[start : start + window] = chunk
    started = time.perf_counter()
    calls = [
        s.send.remote(sink, firsts[k :: len(senders)], rows_per_call, total)
        for k, s in enumerate(senders)
    ]
    ray.get(calls)
    return time.perf_counter() - started


def _collector_rate(senders: Sequence[Any], folder: Path, total: int, rows_per_call: int) -> Any:
    """Rows per second through a fresh collector, its final commit included."""
    import ray

    from .distributed._collector import OrderedCollector

    remote = ray.remote(OrderedCollector).options(num_cpus=0)
    collector = remote.remote(str(folder), "bench", rows_per_part=5000, flush_interval_s=5.0)
    ray.get(collector.status.remote())
    elapsed = _send_all(senders, collector, total, rows_per_call)
    started = time.perf_counter()
    manifest = ray.get(collector.finish.remote(total, {}))
    elapsed += time.perf_counter() - started
    if manifest["committed_until"] != total:
        raise RuntimeError(f"collector committed {manifest['committed_until']} of {total} rows")
    ray.kill(collector)
    return total / elapsed


def _build_each(units: Sequence[Sequence[dict[str, Any]]]) -> None:
    from .distributed._rows import ResultBatch

    for rows in units:
        ResultBatch.from_rows(rows)


def _best_of_3(items: int, fn: Callable[[], object]) -> float:
    """Items per second of ``fn``, best of 3: one pass measures the machine's load more."""
    return max(timed(items, fn).fps for _ in range(3))


def collector_mode(options: BenchOptions, report: Report, workdir: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray

    from .engine._prediction import RESULT_SCHEMA

    total = options.collector_rows
    templates = realistic_rows(max(COLLECTOR_ROWS_PER_CALL))
    sender_cls = ray.remote(RowSender).options(num_cpus=0)
    senders = [sender_cls.remote(templates) for _ in range(COLLECTOR_SENDERS)]
    ray.get([s.__ray_ready__.remote() for s in senders])
    try:
        for n in COLLECTOR_ROWS_PER_CALL:
            rate = _collector_rate(senders, workdir / f"collector-{n}", total, n)
            report.add(
                "collector", f"collector_results_per_s_{n}", rate, f"rows/s, {n} rows a call"
            )
        for n in COLLECTOR_TRANSPORT_ROWS_PER_CALL:
            null = ray.remote(NullSink).options(num_cpus=0).remote()
            rate = total / _send_all(senders, null, total, n)
            report.add(
                "collector",
                f"collector_transport_rows_per_s_{n}",
                rate,
                f"rows/s, no-op actor, {n}",
            )
            ray.kill(null)
    finally:
        for sender in senders:
            ray.kill(sender)
    for n in COLLECTOR_ROWS_PER_CALL:  # an actor's cost per unit, over ~5000 rows
        units = [templates[:n]] * max(1, 5000 // n)
        fps = _best_of_3(n * len(units), functools.partial(_build_each, units))
        report.add("collector", f"collector_build_rows_per_s_{n}", fps, f"rows/s, from_rows, {n}")
    rows = [{**templates[i % len(templates)], "index": i} for i in range(5000)]
    whole = pa.Table.from_pylist(rows, schema=RESULT_SCHEMA)
    fps = _best_of_3(len(rows), lambda: pq.write_table(whole, workdir / "check.parquet"))
    report.add("collector", "collector_parquet_rows_per_s", fps, "rows/s, write_table alone")
    report.values.update(collector_rows=total, collector_senders=COLLECTOR_SENDERS)
    target = f"collector_results_per_s_{COLLECTOR_TARGET_ROWS_PER_CALL}"
    report.target("collector_results_per_s", target, None, 20_000.0)
    report.notes["collector"] = (
        f"the target is judged at {COLLECTOR_TARGET_ROWS_PER_CALL} rows a call "
        f"(cluster.items_per_unit: {COLLECTOR_TARGET_ROWS_PER_CALL}, what a small model's "
        "run would use); senders send prebuilt Arrow batches (build cost: collector_build_*)"
    )


# -- memory ---------------------------------------------------------------------------


@dataclass
class _Proc:
    title: str
    cpu_first_s: float
    cpu_last_s: float
    peak_mb: float


class ProcessWatch:
    """This process and its descendants (Ray's daemons and workers), sampled from /proc:
    CPU seconds and peak RSS (VmHWM) by process title. Linux only; elsewhere it sees
    nothing. A process that ends between samples loses its last interval.

    >>> with ProcessWatch() as watch:                     # doctest: +SKIP
    ...     run(config)
    >>> watch.cpu_s_by_title()["InferenceActor"]          # doctest: +SKIP
    41.2
    """

    def __init__(self, interval_s: float = 0.2) -> None:
        self.interval_s = interval_s
        self.procs: dict[int, _Proc] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-watch", daemon=True)

    def __enter__(self) -> ProcessWatch:
        self._sample(first=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def cpu_s_by_title(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for proc in self.procs.values():
            out[proc.title] = out.get(proc.title, 0.0) + proc.cpu_last_s - proc.cpu_first_s
        return out

    def peak_mb_by_title(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for proc in self.procs.values():
            out[proc.title] = max(out.get(proc.title, 0.0), proc.peak_mb)
        return out

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self, first: bool = False) -> None:
        for pid, (title, cpu_s, peak_mb) in _process_tree(os.getpid()).items():
            known = self.procs.get(pid)
            if known is None:
                self.procs[pid] = _Proc(title, cpu_s if first else 0.0, cpu_s, peak_mb)
            else:  # a worker's title changes (IDLE -> the actor); an exiting one's is blank
                known.title = title if title != "?" else known.title
                known.cpu_last_s = cpu_s
                known.peak_mb = max(known.peak_mb, peak_mb)


def _process_tree(root: int) -> dict[int, tuple[str, float, float]]:
    """``root`` and its descendants: pid -> (title, CPU seconds, VmHWM in MB)."""
    stats: dict[int, list[str]] = {}  # pid -> the fields of /proc/<pid>/stat after the name
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return {}
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat") as f:
                stats[int(entry)] = f.read().rpartition(")")[2].split()
        except OSError:
            continue
    tick = os.sysconf("SC_CLK_TCK")
    tree: dict[int, tuple[str, float, float]] = {}
    for pid, fields in stats.items():
        ancestor = pid
        while ancestor not in (root, 0, 1) and ancestor in stats:
            ancestor = int(stats[ancestor][1])
        if ancestor != root:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().replace(b"\0", b" ").decode(errors="replace").split()
            with open(f"/proc/{pid}/status") as f:
                hwm = next((int(x.split()[1]) for x in f if x.startswith("VmHWM:")), 0)
        except OSError:
            continue
        tree[pid] = (
            _title(argv, pid == root),
            (int(fields[11]) + int(fields[12])) / tick,
            hwm / 1024,
        )
    return tree


def _title(argv: Sequence[str], root: bool) -> str:
    """``InferenceActor`` for ``ray::InferenceActor.process``, ``raylet``, ``driver``..."""
    if root:
        return "driver"
    if not argv:
        return "?"
    if argv[0].startswith("ray::"):
        return argv[0].removeprefix("ray::").split(".")[0]
    name = os.path.basename(argv[0])
    if name.startswith("python") and len(argv) > 1:
        name = os.path.basename(next((a for a in argv[1:] if not a.startswith("-")), argv[1]))
    return name


def memory_child(images: str, out: str, model: str, overrides: Sequence[str]) -> dict[str, Any]:
    """One run in this (fresh) process: peak RSS of the driver and of the collector, in MB."""
    figures = timed_run(model, Path(images), Path(out), overrides, MEMORY_SAMPLE_INTERVAL_S)
    return {
        "items": figures.items,
        "wall_s": figures.wall_s,
        "items_per_s": figures.steady_items_per_s or figures.wall_items_per_s,
        "driver_mb": figures.peak_mb.get("driver"),
        "collector_mb": figures.peak_mb.get("OrderedCollector"),
    }


def _tiny_images(folder: Path, count: int) -> None:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    size = MEMORY_IMAGE_SIZE
    for i in range(count):
        image = np.full((size, size, 3), rng.integers(0, 256, 3), np.uint8)
        cv2.putText(image, str(i % 100), (2, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 2)
        _, data = cv2.imencode(".png", image)
        (folder / f"tiny_{i:06d}.png").write_bytes(data.tobytes())


def memory_mode(options: BenchOptions, report: Report, workdir: Path, say: Echo) -> None:
    if not Path("/proc/self/status").exists():
        raise BenchSkipped("peak RSS is read from /proc/<pid>/status (Linux only)")
    sizes = sorted(set(options.memory_sizes))
    if len(sizes) < 2:
        raise BenchSkipped("--memory-sizes needs two different sizes to compare")
    code = (
        "import json, sys; from distinfer._bench_dist import memory_child as m; "
        "print(json.dumps(m(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])))"
    )
    for n in sizes:
        folder = workdir / f"tiny-{n}"
        started = time.perf_counter()
        _tiny_images(folder, n)
        say(f"memory: {n} images written in {time.perf_counter() - started:.1f} s; running ...")
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                code,
                str(folder),
                str(workdir / f"mem-out-{n}"),
                "ppocr-cls",
                *options.overrides,
            ],
            capture_output=True,
            text=True,
            timeout=MEMORY_CHILD_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"memory run of {n} items failed: {done.stderr.strip()[-2000:]}")
        child = json.loads(done.stdout.strip().splitlines()[-1])
        report.add("memory", f"memory_driver_mb_{n}", child["driver_mb"], "MB peak RSS, driver")
        if child["collector_mb"] is not None:
            report.add(
                "memory",
                f"memory_collector_mb_{n}",
                child["collector_mb"],
                "MB peak RSS, collector",
            )
        report.add("memory", f"memory_items_per_s_{n}", child["items_per_s"], "items/s")
        report.values[f"memory_wall_s_{n}"] = child["wall_s"]
    small, large = sizes[0], sizes[-1]
    report.target(
        "memory_driver_ratio", f"memory_driver_mb_{large}", f"memory_driver_mb_{small}", 1.2, "<="
    )
    report.target(
        "memory_collector_ratio",
        f"memory_collector_mb_{large}",
        f"memory_collector_mb_{small}",
        1.2,
        "<=",
    )
    report.notes["memory"] = (
        f"ppocr-cls on {MEMORY_IMAGE_SIZE}x{MEMORY_IMAGE_SIZE} PNGs, each "
        "size in a fresh process with its own embedded Ray"
    )


# -- all of them -----------------------------------------------------------------------


def ray_modes(
    options: BenchOptions, report: Report, pages: Path | None, workdir: Path, say: Echo
) -> None:
    """Run the Ray modes of ``options`` in order; ``pages`` are the engine modes' images."""
    from .distributed._ray import ray_session, use_loopback

    use_loopback()  # before anything imports ray: its settings are read at import
    wanted = options.modes
    if "distributed" in wanted and pages is not None:
        # First, so that with no Ray running its wall time includes Ray's start.
        guard(report, "distributed", say, lambda: distributed_mode(options, report, pages, workdir))
    if "raydata" in wanted and pages is not None:  # a fresh Ray for each of its jobs
        guard(report, "raydata", say, lambda: raydata_mode(options, report, pages, workdir))
    shared = [m for m in ("cls", "collector") if m in wanted]
    if shared:
        with ray_session(None):
            if "cls" in shared:
                guard(report, "cls", say, lambda: cls_mode(options, report, workdir))
            if "collector" in shared:
                guard(report, "collector", say, lambda: collector_mode(options, report, workdir))
    if "memory" in wanted:
        guard(report, "memory", say, lambda: memory_mode(options, report, workdir, say))
