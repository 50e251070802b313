"""cls: the small ppocr-cls model (48x192) on rendered text-line crops, distributed.

Per-item overhead: with a model this fast, Ray's per-call cost and the
collector's per-batch cost show. Runs like ``distinfer bench --modes
distributed`` (each run between two limit measurements of the bare
classifier, the median of ``--repeat`` runs), in a local Ray started before
the runs, with every process's CPU time per item sampled from /proc. The
target: steady rate >= 0.5 x its limit.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from distinfer.bench import Bracket, Echo, Report, bracketed_run

from ._proc import ProcessWatch

DEFAULTS: dict[str, Any] = {"seconds": 10.0, "repeat": 1, "device": "CPU", "overrides": ()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--crops", type=int, default=5000, help="Text-line crops to classify (default 5000)."
    )


def run(args: argparse.Namespace, report: Report, workdir: Path, say: Echo) -> None:
    import cv2

    from distinfer._demo import render_crops
    from distinfer.distributed._ray import ray_session

    folder = workdir / "crops"
    folder.mkdir(exist_ok=True)
    for i, crop in enumerate(render_crops(np.random.default_rng(0), args.crops)):
        cv2.imwrite(str(folder / f"crop_{i:06d}.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    report.values.update(model="ppocr-cls", images=args.crops)
    how = Bracket(args.seconds, args.repeat, args.device, args.overrides, 0.5, ProcessWatch)
    with ray_session(None):
        bracketed_run(report, "cls", "ppocr-cls", folder, workdir / "cls", how)
