"""distributed: ``distinfer bench --modes distributed`` with each process's CPU time per item.

The same runs (an embedded local Ray, each run between two limit measurements,
the median of ``--repeat`` runs, the steady rate against the limit), with
every process of the run (driver, Ray's daemons, the inference actors, the
collector) sampled from /proc: where a distributed run's CPU goes.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from distinfer.bench import BenchOptions, Echo, Report, distributed_mode, page_images

from ._proc import ProcessWatch

DEFAULTS: dict[str, Any] = {
    "model": "ppocr-det",
    "images": 200,
    "images_dir": None,
    "seconds": 10.0,
    "repeat": 1,
    "device": "CPU",
    "overrides": (),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own."""


def run(args: argparse.Namespace, report: Report, workdir: Path, say: Echo) -> None:
    pages, images = page_images(workdir, args.images, args.images_dir)
    report.values.update(model=args.model, images=len(images))
    options = BenchOptions(
        modes=("distributed",),
        model=args.model,
        images=args.images,
        images_dir=args.images_dir,
        seconds=args.seconds,
        repeat=args.repeat,
        overrides=tuple(args.overrides),
        device=args.device,
    )
    distributed_mode(options, report, pages, workdir, watch=ProcessWatch)
