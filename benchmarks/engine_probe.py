"""engine-probe: where the engine's async throughput goes, the full ppocr-det pipeline vs inference.

Runs the same compiled detector through distinfer's Engine twice on generated
pages: once from JPEG bytes (decode at 1/2, letterbox, DB post-processing),
once on ready detector canvases (480x640 for these pages) with no host work at
all. The gap between the two is the cost of host-side Python per image; on
many cores it is what keeps async below the bare-model limit.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distinfer.bench import Echo, Report

if TYPE_CHECKING:
    from distinfer.engine._engine import Image
    from distinfer.models import Task

DEFAULTS: dict[str, Any] = {"images": 160}


def fps(task: Task, items: Sequence[Image], warm_up: int = 16) -> float:
    """Items per second through ``Engine.submit``, after a warm-up batch."""
    from distinfer.engine._engine import Engine

    with Engine(task) as engine:
        done = threading.Semaphore(0)

        def push(batch: Sequence[Image]) -> None:
            for item in batch:
                engine.submit(item, lambda outcome, pixels: done.release())
            for _ in batch:
                done.acquire()

        push(items[:warm_up])
        start = time.perf_counter()
        push(items)
        return len(items) / (time.perf_counter() - start)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own: ``--images`` pages are generated."""


def run(args: argparse.Namespace, report: Report, workdir: Path, say: Echo) -> None:
    from distinfer._demo import write_pages
    from distinfer.engine._decode import decode_image
    from distinfer.models import task_from_model
    from distinfer.models._db import letterbox
    from distinfer.models.ppocr import DET_SHAPES, det_stage

    from ._probe_task import InferOnly

    data = [path.read_bytes() for path, _ in write_pages(workdir / "pages", args.images)]
    halves = [decode_image(d, reduce=lambda w, h: 2)[0] for d in data]
    canvases = [letterbox(h, DET_SHAPES[det_stage(h.shape[1], h.shape[0])])[0] for h in halves]
    full = fps(task_from_model("ppocr-det"), data)
    bare = fps(InferOnly(), canvases)
    report.values.update(model="ppocr-det", images=len(data))
    report.add("engine-probe", "probe_inference_alone_fps", bare, "images/s, ready canvases")
    report.add(
        "engine-probe",
        "probe_full_pipeline_fps",
        full,
        "images/s, from JPEG bytes",
        f"{full / bare:.3f} x inference alone",
    )
    report.values["probe_full_vs_inference"] = full / bare
