"""raydata: a distinfer run against Ray Data on the same pages, each job in a fresh local Ray.

Jobs, each timed from job start (actor start and model compile included) to the
last file written: ``distinfer`` (a ``distinfer.run``); ``guide``
(``read_images -> map_batches(actor pool) -> write_parquet`` as Ray Data's
batch-inference guide writes it, running the same task); ``predictor`` and
``predictor_one`` (Ray Data running ``distinfer.ray_data.Predictor`` on the
file bytes: a pool of one-CPU predictors, or one predictor with every CPU but
one). The machine's CPU time around each job
(/proc/stat) splits the ratio into work per item and cores kept busy. The
bare model's limit is measured before and after. The target: distinfer >= 2x
the guide.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distinfer.bench import (
    BenchSkipped,
    Echo,
    Report,
    bare_model,
    image_paths,
    measure_limit,
    page_images,
    timed_run,
)

from ._proc import machine_cpu_s
from ._raydata_pipelines import RAYDATA_BATCH_ROWS, guide_pipeline, predictor_pipeline

#: The common options this benchmark takes, with its defaults.
DEFAULTS: dict[str, Any] = {
    "model": "ppocr-det",
    "images": 200,
    "images_dir": None,
    "seconds": 10.0,
    "repeat": 1,
    "device": "CPU",
    "overrides": (),
}
#: The Ray Data pipelines timed: Ray's batch-inference guide (the target's baseline),
#: then distinfer's Ray Data predictor in a pool of one-CPU actors, and in one actor.
RAYDATA_VARIANTS = ("guide", "predictor", "predictor_one")
#: Seconds a fresh local Ray is left idle before a job (Ray starts its worker processes).
RAYDATA_SETTLE_S = 3.0
#: Report keys of the jobs.
_RAYDATA_KEYS = {
    "distinfer": "distributed_session",
    "guide": "raydata",
    "predictor": "raydata_predictor",
    "predictor_one": "raydata_predictor_one",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own: ``--repeat N`` runs the jobs interleaved N times, medians kept."""


def run(args: argparse.Namespace, report: Report, workdir: Path, say: Echo) -> None:
    pages, images = page_images(workdir, args.images, args.images_dir)
    report.values.update(model=args.model, images=len(images))
    raydata_mode(args, report, pages, workdir)


def raydata_mode(args: argparse.Namespace, report: Report, pages: Path, workdir: Path) -> None:
    """distinfer and the Ray Data pipelines on the same pages, each job in a fresh Ray.

    A job in a session that ran another leaves the next one worse off: Ray Data
    keeps its coordinator actors and its workers' processes, so a job after it
    waits for new worker processes. Each job here gets a new local Ray, idle for
    ``RAYDATA_SETTLE_S`` (Ray starts its worker processes then), as a job
    submitted to an idle cluster finds it. With ``--repeat N`` the jobs run
    interleaved N times and each keeps its median.
    """
    from distinfer.distributed._ray import ray_session, use_loopback

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
    bare = bare_model(args.model, paths[0].read_bytes())
    before, _ = measure_limit(bare, args.seconds, args.device)
    cpus = 1
    try:
        for n in range(args.repeat):
            for job in rounds:
                fresh = not ray.is_initialized()  # else a session we were given (tests)
                with ray_session(None) as ray:
                    time.sleep(RAYDATA_SETTLE_S if fresh else 0.0)
                    cpus = int(ray.cluster_resources().get("CPU", 1))
                    busy = machine_cpu_s()  # the whole machine's, so every process of a job
                    if job == "distinfer":
                        figures = timed_run(  # unwatched, like the Ray Data jobs
                            args.model, pages, workdir / "session", args.overrides
                        )
                        rounds[job].append(figures.wall_s)
                    else:
                        out = workdir / f"{job}-{n}"  # Ray Data adds files to a folder
                        rounds[job].append(_raydata_job(ray, args.model, paths, cpus, out, job))
                    if busy is not None and (done := machine_cpu_s()) is not None:
                        cpu_rounds[job].append(done[1] - busy[1])
    finally:
        for name, value in saved.items():
            setattr(context, name, value)
    after, _ = measure_limit(bare, args.seconds, args.device)
    limit = max(before.fps, after.fps)
    report.add("raydata", "raydata_limit_fps", limit, "images/s, bare model, max of 2")
    limit_cpu_ms = min(before.cpu_ms, after.cpu_ms)
    walls = {name: statistics.median(values) for name, values in rounds.items()}
    report.values["raydata_rounds_wall_s"] = rounds
    ours_wall = walls["distinfer"]
    labels = {
        "distinfer": "items/s, job wall, Ray up",
        "guide": "items/s, job wall, Ray up",
        "predictor": "items/s, distinfer's Predictor, 1-CPU pool",
        "predictor_one": "items/s, distinfer's Predictor, one actor",
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
        "distributed_vs_raydata_predictor",
        "distributed_session_items_per_s",
        "raydata_predictor_items_per_s",
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
        "image of the model compiled with OpenVINO's defaults; raydata_predictor: the same pool "
        "reading bytes (read_binary_files) and running distinfer.ray_data.Predictor (its decode "
        "and engine, one CPU each); raydata_predictor_one: one Predictor with every CPU but "
        "one. "
        f"batch_size={RAYDATA_BATCH_ROWS}, write_parquet; every run timed from job start "
        "(actor start and model compile included) to the last file written"
    )
    report.target(
        "distributed_vs_raydata", "distributed_session_items_per_s", "raydata_items_per_s", 2.0
    )


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
    import pyarrow.parquet as pq

    indices = {str(p.resolve()).lstrip("/"): i for i, p in enumerate(paths)}
    files = [str(p) for p in paths]
    started = time.perf_counter()
    if variant == "guide":
        dataset = guide_pipeline(ray, files, model, indices, cpus)
    else:
        dataset = predictor_pipeline(ray, files, model, cpus, pool=variant == "predictor")
    dataset.write_parquet(str(out))
    wall = time.perf_counter() - started
    # The guide's rows carry their index; the predictor's their path (and no error).
    table = pq.read_table(out)
    if "index" in table.column_names:
        written = sorted(table.column("index").to_pylist())
    else:
        found = {str(p).lstrip("/") for p in table.column("path").to_pylist()}
        written = sorted(indices[p] for p in found if p in indices)
        if table.column("error").null_count != table.num_rows:
            raise RuntimeError(f"Ray Data's {variant} job failed some pages")
    if written != list(range(len(paths))):
        raise RuntimeError(f"Ray Data wrote {len(written)} rows, not indices 0..{len(paths) - 1}")
    return wall
