"""load: many small generated images through ``distinfer.run`` on an embedded Ray.

Reports items/s and the peak resident memory (VmHWM, from /proc; Linux only)
of the driver, the collector and the inference actors, and the collector's
largest reorder buffer: with memory bounded by configuration, these stay flat
as the input grows. Compare two sizes (``--out`` keeps the images for the next
run):

    python benchmarks/run.py load --images 2000 --out out/load-2k
    python benchmarks/run.py load --images 50000 --out out/load-50k
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from distinfer.bench import Echo, Report

from ._proc import ProcessWatch

DEFAULTS: dict[str, Any] = {"images": 50_000, "model": "ppocr-cls"}
SAMPLE_INTERVAL_S = 0.5
IMAGES_PER_FOLDER = 1000
#: The processes whose peak RSS is reported (``ProcessWatch`` titles).
ROLES = ("driver", "OrderedCollector", "InferenceActor")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("out/load"),
        help="Folder of the images (kept for the next run) and results (default out/load).",
    )
    parser.add_argument(
        "--items-per-unit",
        default="auto",
        type=lambda v: v if v == "auto" else int(v),
        help="cluster.items_per_unit (default auto).",
    )


def write_images(folder: Path, count: int) -> None:
    """``count`` 64x64 PNGs, a thousand per subfolder."""
    import cv2

    rng = np.random.default_rng(0)
    for i in range(count):
        sub = folder / f"{i // IMAGES_PER_FOLDER:04d}"
        if i % IMAGES_PER_FOLDER == 0:
            sub.mkdir(parents=True, exist_ok=True)
        image = np.full((64, 64, 3), rng.integers(0, 256, 3), np.uint8)
        cv2.putText(image, str(i % 100), (4, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 0), 2)
        cv2.imwrite(str(sub / f"img{i:06d}.png"), image)


def run(args: argparse.Namespace, report: Report, workdir: Path, say: Echo) -> None:
    from distinfer import RunConfig, run

    images = args.out / "images"
    if not images.exists() or sum(1 for _ in images.rglob("*.png")) != args.images:
        shutil.rmtree(images, ignore_errors=True)
        started = time.perf_counter()
        write_images(images, args.images)
        say(f"{args.images} images written in {time.perf_counter() - started:.0f} s")
    model = {"name": args.model} if "/" not in args.model else {"path": args.model}
    config = RunConfig.parse(
        {
            "model": model,
            "input": {"images": str(images.resolve())},
            "output": {"parquet": str((args.out / "results").resolve())},
            "cluster": {"items_per_unit": args.items_per_unit, "progress": "off"},
        }
    )
    with ProcessWatch(SAMPLE_INTERVAL_S) as watch:
        summary = run(config, overwrite=True)
    collector = summary.manifest["stats"]["collector"]
    peaks = watch.peak_mb_by_title()
    report.values.update(
        model=args.model,
        items=summary.total,
        errors=summary.errors,
        elapsed_s=summary.elapsed_s,
        reorder_buffer_items=config.cluster.reorder_buffer_items,
    )
    report.add("load", "items_per_s", summary.items_per_s, "items/s")
    for role in ROLES:
        if role in peaks:
            report.add("load", f"peak_rss_mb_{role}", peaks[role], "MB peak RSS")
    report.add(
        "load",
        "collector_max_buffered",
        collector["max_buffered"],
        f"rows, of reorder_buffer_items {config.cluster.reorder_buffer_items}",
    )
