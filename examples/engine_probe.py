"""Where the engine's async throughput goes: the full ppocr-det pipeline vs inference alone.

Runs the same compiled detector through distinfer's Engine twice on generated
pages: once from JPEG bytes (decode at 1/2, letterbox, DB post-processing), once
on ready detector canvases (480x640 for these pages) with no host work at all.
The gap between the two is the cost of host-side Python per image; on many
cores it is what keeps async below the bare-model limit (see the README's
benchmark section).

    python examples/engine_probe.py [--pages 160]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from distinfer import Prediction
from distinfer._demo import write_pages
from distinfer.engine._decode import decode_image
from distinfer.engine._engine import Engine, Image
from distinfer.models import InferFn, Task, task_from_model
from distinfer.models._db import letterbox
from distinfer.models.ppocr import DET_FIRST_USE, DET_SHAPES, det_stage


class InferOnly:
    """The detector's graph fed a ready canvas: no decode, no letterbox, no DB."""

    kind = "probe-infer-only"
    lazy_stages = DET_FIRST_USE

    def __init__(self) -> None:
        self.inner = task_from_model("ppocr-det")

    def graphs(self) -> Mapping[str, ov.Model]:
        return self.inner.graphs()

    def decode_scale(self, width: int, height: int) -> int:
        return 1

    def predict(self, image: np.ndarray, infer: InferFn, size: tuple[int, int]) -> Prediction:
        infer(det_stage(image.shape[1], image.shape[0]), [image])
        return Prediction(width=size[0], height=size[1])

    def save(self, folder: Path) -> dict[str, Any]:
        raise NotImplementedError


def fps(task: Task, items: Sequence[Image], warm_up: int = 16) -> float:
    """Items per second through ``Engine.submit``, after a warm-up batch."""
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=160)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = [path.read_bytes() for path, _ in write_pages(tmp, args.pages)]
    halves = [decode_image(d, reduce=lambda w, h: 2)[0] for d in data]
    canvases = [letterbox(h, DET_SHAPES[det_stage(h.shape[1], h.shape[0])])[0] for h in halves]
    full = fps(task_from_model("ppocr-det"), data)
    bare = fps(InferOnly(), canvases)
    print(f"full pipeline {full:.1f} fps; inference alone {bare:.1f} fps; ratio {full / bare:.3f}")


if __name__ == "__main__":
    main()
