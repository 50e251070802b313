"""How many engine processes should share a node? The figure behind ``cluster.actors_per_node``.

Runs the bundled text detector (ppocr-det) on generated pages with the async
engine: once in one process using every core, then in N processes that split
the pages and the cores between them, as N inference actors on one node do
(each with ``INFERENCE_NUM_THREADS`` = its share), with OpenVINO's default
thread pinning and without it. Prints fps and the ratio to the bare model's
limit. No Ray needed.

    python examples/actors_per_node.py --images 800 --processes 2,4,8
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from distinfer._bench import bare_model, measure_limit
from distinfer._demo import write_pages
from distinfer.engine._engine import Engine, available_cores
from distinfer.models import task_from_model


def engine_pass(
    images: list[bytes], config: dict[str, Any], start: Any = None
) -> tuple[float, float]:
    """Run ``images`` through one async engine; the (start, end) times of the timed pass."""
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
    spans = [out.get() for _ in workers]
    for worker in workers:
        worker.join()
    return len(paths) / (max(end for _, end in spans) - min(began for began, _ in spans))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--processes", default="2,4", help="comma-separated process counts")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    cores = available_cores()
    folder = Path(tempfile.mkdtemp(prefix="distinfer-actors-"))
    paths = [str(p) for p, _ in write_pages(folder, args.images)]
    images = [Path(p).read_bytes() for p in paths]
    limit = measure_limit(bare_model("ppocr-det"), 8.0)[0].fps
    print(f"{cores} cores, bare-model limit {limit:.1f} fps", flush=True)
    for _ in range(args.rounds):
        began, end = engine_pass(images, {})
        fps = len(images) / (end - began)
        print(f"1 process x {cores} threads: {fps:.1f} fps, {fps / limit:.3f} x limit", flush=True)
        for n in (int(k) for k in args.processes.split(",")):
            for pinned in (True, False):
                fps = processes_fps(paths, n, cores, pinned)
                label = f"{n} processes x {max(1, cores // n)} threads"
                pinning = "pinned" if pinned else "unpinned"
                print(f"{label}, {pinning}: {fps:.1f} fps, {fps / limit:.3f} x limit", flush=True)


if __name__ == "__main__":
    main()
