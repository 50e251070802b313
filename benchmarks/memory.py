"""memory: peak RSS (VmHWM) of the driver and of the collector, a small run against a large one.

``ppocr-cls`` on tiny generated PNGs; each size runs in a fresh process (a
process's peak only grows) with its own embedded Ray, sampled from /proc. With
memory bounded by configuration, the peaks stay flat as the input grows: the
targets are large / small <= 1.2 for both. Linux only.

The child run: ``python -m benchmarks.memory IMAGES OUT MODEL [--set K=V ...]``
prints its figures as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from distinfer.bench import BenchSkipped, Echo, Report, timed_run

from ._proc import ProcessWatch

DEFAULTS: dict[str, Any] = {"overrides": ()}
MEMORY_IMAGE_SIZE = 32
MEMORY_SAMPLE_INTERVAL_S = 0.1
MEMORY_CHILD_TIMEOUT_S = 1800
#: The repository root: the child runs ``-m benchmarks.memory`` from there.
ROOT = Path(__file__).resolve().parent.parent


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sizes",
        default="1000,50000",
        help="The two run sizes compared, comma-separated (default 1000,50000).",
    )


def run(args: argparse.Namespace, report: Report, workdir: Path, say: Echo) -> None:
    if not Path("/proc/self/status").exists():
        raise BenchSkipped("peak RSS is read from /proc/<pid>/status (Linux only)")
    sizes = sorted({int(n) for n in args.sizes.split(",") if n.strip()})
    if len(sizes) < 2:
        raise BenchSkipped("--sizes needs two different sizes to compare")
    for n in sizes:
        folder = workdir / f"tiny-{n}"
        started = time.perf_counter()
        tiny_images(folder, n)
        say(f"memory: {n} images written in {time.perf_counter() - started:.1f} s; running ...")
        child = _run_child(folder, workdir / f"mem-out-{n}", "ppocr-cls", args.overrides)
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


def _run_child(images: Path, out: Path, model: str, overrides: Sequence[str]) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.memory", str(images), str(out), model]
    command += [f"--set={o}" for o in overrides]
    done = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=MEMORY_CHILD_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory run of {images} failed: {done.stderr.strip()[-2000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def memory_child(images: Path, out: Path, model: str, overrides: Sequence[str]) -> dict[str, Any]:
    """One run in this (fresh) process: peak RSS of the driver and of the collector, in MB."""
    figures = timed_run(model, images, out, overrides, ProcessWatch(MEMORY_SAMPLE_INTERVAL_S))
    return {
        "items": figures.items,
        "wall_s": figures.wall_s,
        "items_per_s": figures.steady_items_per_s or figures.wall_items_per_s,
        "driver_mb": figures.peak_mb.get("driver"),
        "collector_mb": figures.peak_mb.get("OrderedCollector"),
    }


def tiny_images(folder: Path, count: int) -> None:
    """``count`` 32x32 PNGs of a flat colour and a number, ``tiny_NNNNNN.png``."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    size = MEMORY_IMAGE_SIZE
    for i in range(count):
        image = np.full((size, size, 3), rng.integers(0, 256, 3), np.uint8)
        cv2.putText(image, str(i % 100), (2, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 2)
        _, data = cv2.imencode(".png", image)
        (folder / f"tiny_{i:06d}.png").write_bytes(data.tobytes())


def _child_main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory")
    parser.add_argument("images", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("model")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)
    print(json.dumps(memory_child(args.images, args.out, args.model, args.overrides)))


if __name__ == "__main__":
    _child_main(sys.argv[1:])
