"""The bare model's limit: what OpenVINO's ``benchmark_app`` measures, every ratio's reference.

``bare_model`` is the model file as it is (no preprocessing), reshaped to the
static size the pages run at; ``measure_limit`` runs it the way
``benchmark_app`` does (THROUGHPUT hint, ``AsyncInferQueue`` with
OPTIMAL_NUMBER_OF_INFER_REQUESTS, one input tensor prepared once).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._report import BenchSkipped


@dataclass(frozen=True)
class Sample:
    """One timed pass: items per second, and this process's CPU time per item.

    CPU time per item barely moves when other processes share the machine, so
    ``limit``'s over a mode's says how close the mode would come on a machine of
    its own (when it keeps every core busy), where the fps ratio cannot.
    """

    fps: float
    cpu_ms: float


def timed(items: int, fn: Callable[[], object]) -> Sample:
    """Run ``fn`` (which handles ``items`` items) once and time it.

    >>> timed(10, lambda: None).fps > 0
    True
    """
    cpu, start = _process_cpu_s(), time.perf_counter()
    fn()
    elapsed, cpu = time.perf_counter() - start, _process_cpu_s() - cpu
    return Sample(items / elapsed, 1e3 * cpu / items)


def _process_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def bare_model(model: str, image: bytes | None = None) -> Any:
    """The model file as it is (no preprocessing), reshaped to the static size we run.

    Bundled ``ppocr-det``: PP-OCRv6 det small at 1x3xHxW, the detector shape that
    ``image`` (the first test image) runs at (1x3x480x640 for the 1280x960 pages;
    1x3x640x640 without an image); ``ppocr-cls``: the mobile classifier at 1x3x48x192.
    A model file with a dynamic input gets batch 1 and the height and width of the
    graph distinfer compiles for it.
    """
    import openvino as ov

    from ..engine._decode import image_size
    from ..models._openvino import read_model

    if model == "ppocr":
        raise BenchSkipped(
            "ppocr is a chain of three models, without one bare model to time; "
            "use --model ppocr-det (or ppocr-cls) for the engine modes"
        )
    if model in ("ppocr-det", "ppocr-cls"):
        from ..models import ppocr

        folder = ppocr.bundled_models_dir()
        if model == "ppocr-det":
            size = image_size(image) if image is not None else None
            stage = ppocr.det_stage(*size) if size else "det"
            path, (h, w) = ppocr.model_file(folder, ppocr.DET_FILE), ppocr.DET_SHAPES[stage]
        else:
            path, (h, w) = ppocr.model_file(folder, ppocr.CLS_FILE), ppocr.CLS_HW
        bare = read_model(path)
        bare.reshape({bare.inputs[0].get_any_name(): ov.PartialShape([1, 3, h, w])})
        return bare
    path = Path(model)
    if not path.is_file():
        raise BenchSkipped(f"{model}: limit needs a model file (a folder holds its own graphs)")
    bare = read_model(path)
    shape = bare.inputs[0].get_partial_shape()
    if shape.is_dynamic:
        from ..models import task_from_model

        graphs = task_from_model(model).graphs()
        if len(graphs) != 1:
            raise BenchSkipped(f"{model}: a task with {len(graphs)} graphs has no single limit")
        _, h, w, _ = next(iter(graphs.values())).inputs[0].get_shape()
        dims = (
            [1, 3, h, w] if shape.rank.get_length() == 4 and shape[3].is_dynamic else [1, h, w, 3]
        )
        bare.reshape({bare.inputs[0].get_any_name(): ov.PartialShape(dims)})
    return bare


def measure_limit(
    bare: Any, seconds: float, device: str = "CPU", openvino: Mapping[str, Any] | None = None
) -> tuple[Sample, int]:
    """benchmark_app's figure on ``bare``, and the number of infer requests it used;
    ``openvino``: properties merged over the THROUGHPUT hint (as a job's ``model.openvino``)."""
    import openvino as ov

    config = {"PERFORMANCE_HINT": "THROUGHPUT", **(openvino or {})}
    compiled = ov.Core().compile_model(bare, device, config)
    requests = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    queue = ov.AsyncInferQueue(compiled, requests)
    port = compiled.inputs[0]
    data = np.random.default_rng(0).random(tuple(port.get_shape()))
    tensor = ov.Tensor(np.ascontiguousarray(data.astype(port.get_element_type().to_dtype())))
    queue.start_async({0: tensor})  # the "first inference", not timed (benchmark_app too)
    queue.wait_all()
    submitted = [0]

    def run() -> None:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            queue.start_async({0: tensor})  # blocks until a request is idle
            submitted[0] += 1
        queue.wait_all()

    sample = timed(1, run)  # per "1 item" here; rescaled below
    count = max(1, submitted[0])
    return Sample(sample.fps * count, sample.cpu_ms / count), requests
