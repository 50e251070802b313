"""actors-per-node: how many engine processes should share a node (``cluster.actors_per_node``).

Runs the bundled text detector (ppocr-det) on generated pages with the async
engine: once in one process using every core, then in N processes that split
the pages and the cores between them, as N inference actors on one node do
(each with ``INFERENCE_NUM_THREADS`` = its share), with OpenVINO's default
thread pinning and without it. Reports fps and the ratio to the bare model's
limit (at the shape the pages run at), ``--repeat`` rounds. No Ray needed.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import threading
import time
from pathlib import Path
from typing import Any

from distinfer.bench import Echo, Report, bare_model, measure_limit

DEFAULTS: dict[str, Any] = {"images": 400, "seconds": 8.0, "repeat": 2}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--processes", default="2,4", help="Comma-separated process counts (default 2,4)."
    )


def engine_pass(
    images: list[bytes], config: dict[str, Any], start: Any = None
) -> tuple[float, float]:
    """Run ``images`` through one async engine; the (start, end) times of the timed pass."""
    from distinfer.engine._engine import Engine
    from distinfer.models import task_from_model

    with Engine(task_from_model("ppocr-det"), config=config) as engine:
        done = threading.Semaphore(0)
        for image in images[:8]:  # warm up: first requests allocate
            engine.submit(image, lambda outcome, pixels: done.release())
        for _ in images[:8]:
            done.acquire()
        if start is not None:
            start.wait()  # every process starts its timed pass together
        began = time.perf_counter()
        for image in images:
            engine.submit(image, lambda outcome, pixels: done.release())
        for _ in images:
            done.acquire()
        return began, time.perf_counter()


def _worker(paths: list[str], config: dict[str, Any], start: Any, out: Any) -> None:
    out.put(engine_pass([Path(p).read_bytes() for p in paths], config, start))


def processes_fps(paths: list[str], processes: int, cores: int, pinned: bool) -> float:
    """Pages per second of ``processes`` engines splitting ``paths`` and ``cores``."""
    context = mp.get_context("spawn")
    start, out = context.Barrier(processes), context.Queue()
    config = {"INFERENCE_NUM_THREADS": max(1, cores // processes), "ENABLE_CPU_PINNING": pinned}
    workers = [
        context.Process(target=_worker, args=(paths[k::processes], config, start, out))
        for k in range(processes)
    ]
    for worker in workers:
        worker.start()
    spans: list[tuple[float, float]] = [out.get() for _ in workers]
    for worker in workers:
        worker.join()
    return len(paths) / (max(end for _, end in spans) - min(began for began, _ in spans))


def run(args: argparse.Namespace, report: Report, workdir: Path, say: Echo) -> None:
    from distinfer._demo import write_pages
    from distinfer.engine._threads import available_cores

    cores = available_cores()
    paths = [str(p) for p, _ in write_pages(workdir / "pages", args.images)]
    images = [Path(p).read_bytes() for p in paths]
    limit = measure_limit(bare_model("ppocr-det", images[0]), args.seconds)[0].fps
    report.values.update(model="ppocr-det", images=len(images), cores=cores)
    report.add("actors", "actors_limit_fps", limit, "images/s, bare model")
    rounds: dict[str, list[float]] = {}

    def record(key: str, fps: float, label: str) -> None:
        rounds.setdefault(key, []).append(fps)
        round_no = len(rounds[key])
        report.rows.append(
            ("actors", f"{key} #{round_no}", fps, label, f"{fps / limit:.3f} x limit")
        )
        say(f"{label}: {fps:.1f} fps, {fps / limit:.3f} x limit")

    for _ in range(args.repeat):
        began, end = engine_pass(images, {})
        record("actors_1_process_fps", len(images) / (end - began), f"1 process x {cores} threads")
        for n in (int(k) for k in args.processes.split(",")):
            for pinned in (True, False):
                pinning = "pinned" if pinned else "unpinned"
                label = f"{n} processes x {max(1, cores // n)} threads, {pinning}"
                record(
                    f"actors_{n}_processes_{pinning}_fps",
                    processes_fps(paths, n, cores, pinned),
                    label,
                )
    for key, values in rounds.items():  # every round's figure, and each one's ratio to the limit
        report.values[key] = values
        report.values[key.removesuffix("_fps") + "_vs_limit"] = [v / limit for v in values]
