"""The engine modes: one process, no Ray, the same encoded pages read into memory once.

File reading is left out of every mode; decoding and post-processing are in
every mode except ``limit``:

- ``limit``: the bare model (``_limit``), once per round and once more at the
  end; the highest is kept (other work slowing part of the run makes the ratios
  err low, never high). Every other figure is a ratio to it;
- ``plain``: the loop a user writes without distinfer (``cv2.imdecode``,
  ``cv2.resize``, normalise, ``compiled_model(x)``, the same DB post-processing);
- ``sync``: ``Deployment.infer(jpeg_bytes)`` in a loop;
- ``async``: ``set_asynchronous_callback`` + ``infer_async`` + ``await_all``;
- ``video``: ``AsyncVideoProcessor`` over the pages as frames (order checked).
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._limit import Sample, bare_model, measure_limit, timed
from ._options import ENGINE_MODES, BenchOptions
from ._report import BenchSkipped, Report

logger = logging.getLogger(__name__)


def plain_loop(model: str, bare: Any, device: str) -> Callable[[bytes], None]:
    """A user's loop body without distinfer: full decode, resize, normalise, infer,
    the same post-processing; the model compiled with OpenVINO's default config."""
    import cv2
    import openvino as ov

    if model not in ("ppocr-det", "ppocr-cls"):
        raise BenchSkipped(
            "the plain loop is written for the bundled ppocr-det and ppocr-cls "
            "(it needs the model's pre- and post-processing)"
        )
    from ..models._db import db_boxes

    compiled = ov.Core().compile_model(bare, device)
    _, _, h, w = compiled.inputs[0].get_shape()

    def one(data: bytes) -> None:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise RuntimeError("plain: an image could not be decoded")
        x = cv2.resize(bgr, (w, h)).astype(np.float32)  # PaddleOCR models take BGR
        x = ((x - 127.5) / 127.5).transpose(2, 0, 1)[None]
        out = compiled(x)[0]
        if model == "ppocr-det":
            quads, _ = db_boxes(out.reshape(out.shape[-2:]))
            quads *= np.array([bgr.shape[1] / w, bgr.shape[0] / h], dtype=np.float32)
        else:
            int(out.reshape(-1).argmax())

    return one


def _async_pass(deployment: Any, images: Sequence[bytes]) -> None:
    done = [0]
    deployment.set_asynchronous_callback(lambda image, pred, i: done.__setitem__(0, done[0] + 1))
    for i, data in enumerate(images):
        deployment.infer_async(data, runtime_data=i)
    deployment.await_all()
    deployment.asynchronous_mode = False
    if done[0] != len(images):
        raise RuntimeError(f"async: {done[0]} callbacks for {len(images)} images")


def _video_pass(deployment: Any, images: Sequence[bytes]) -> None:
    from ..engine._video_processor import AsyncVideoProcessor

    order: list[int] = []
    processor = AsyncVideoProcessor(deployment, lambda frame, pred, i: order.append(i))
    processor.start()
    for i, data in enumerate(images):
        processor.process(data, runtime_data=i)
    processor.await_all()
    processor.stop()
    if order != list(range(len(images))):
        raise RuntimeError("video: frames were processed out of order")


def engine_modes(options: BenchOptions, report: Report, images: Sequence[bytes]) -> None:
    """Measure the engine modes asked for, interleaved ``repeat`` times (medians kept)."""
    from ..engine._deployment import Deployment

    wanted = [m for m in ENGINE_MODES if m in options.modes and m not in report.skipped]
    bare = None
    if {"limit", "plain"} & set(wanted):
        try:
            bare = bare_model(options.model, images[0] if images else None)
        except BenchSkipped as exc:
            report.skipped.update(dict.fromkeys({"limit", "plain"} & set(wanted), str(exc)))
            wanted = [m for m in wanted if m not in report.skipped]
    runs: dict[str, Callable[[], Sample]] = {}
    if "limit" in wanted:

        def limit() -> Sample:
            sample, report.values["limit_infer_requests"] = measure_limit(
                bare, options.seconds, options.device, options.openvino
            )
            return sample

        runs["limit"] = limit
    if "plain" in wanted:
        try:
            one = plain_loop(options.model, bare, options.device)
            one(images[0])  # warm-up
            runs["plain"] = lambda: timed(len(images), lambda: [one(x) for x in images])
        except BenchSkipped as exc:
            report.skipped["plain"] = str(exc)
    deployment = None
    if {"sync", "async", "video"} & set(wanted):
        deployment = Deployment.from_model(options.model)
        started = time.perf_counter()
        deployment.load_inference_models(
            options.device,
            openvino_configuration=options.openvino,
            inference_niceness=options.inference_niceness,
        )
        report.values["engine_compile_s"] = time.perf_counter() - started
        report.values["engine_infer_requests"] = deployment.engine.jobs
        report.values["engine_max_in_flight"] = deployment.engine.max_in_flight
        for data in images[: 2 * deployment.engine.max_in_flight]:  # warm-up, not timed
            deployment.infer(data)
        d = deployment
        runs["sync"] = lambda: timed(len(images), lambda: [d.infer(x) for x in images])
        runs["async"] = lambda: timed(len(images), lambda: _async_pass(d, images))
        runs["video"] = lambda: timed(len(images), lambda: _video_pass(d, images))
    samples: dict[str, list[Sample]] = {m: [] for m in wanted if m in runs}
    try:
        for _ in range(options.repeat):  # interleaved: a change of load hits every mode
            for mode in list(samples):
                try:
                    samples[mode].append(runs[mode]())
                except Exception as exc:  # reported; the other modes go on
                    logger.debug("bench mode %s failed", mode, exc_info=True)
                    report.failed[mode] = f"{type(exc).__name__}: {exc}"
                    del samples[mode]
        if samples.get("limit"):  # once more at the end: the ratios take the highest limit
            samples["limit"].append(runs["limit"]())
    finally:
        if deployment is not None:
            deployment.close()
    report_engine(report, samples)


def report_engine(report: Report, samples: dict[str, list[Sample]]) -> None:
    """Each mode's median (the limit's highest), its ratios to the limit, and the targets."""
    medians = {
        mode: Sample(
            statistics.median(s.fps for s in got), statistics.median(s.cpu_ms for s in got)
        )
        for mode, got in samples.items()
        if got
    }
    if samples.get("limit"):  # other work slowing part of the run makes ratios err low, not high
        medians["limit"] = max(samples["limit"], key=lambda s: s.fps)
    limit = medians.get("limit")
    for mode in ENGINE_MODES:
        if mode not in medians:
            continue
        sample = medians[mode]
        vs = f"{sample.fps / limit.fps:.3f} x limit" if limit and mode != "limit" else ""
        report.add(mode, f"{mode}_fps", sample.fps, "images/s", vs)
        vs = f"{limit.cpu_ms / sample.cpu_ms:.3f} limit/mode" if limit and mode != "limit" else ""
        report.add(mode, f"{mode}_cpu_ms_per_item", sample.cpu_ms, "ms CPU/image (process)", vs)
        if len(samples[mode]) > 1:
            report.values[f"{mode}_fps_samples"] = [s.fps for s in samples[mode]]
        if mode != "limit":
            report.ratio(f"{mode}_ratio", f"{mode}_fps", "limit_fps")
            report.ratio(f"{mode}_cpu_ratio", "limit_cpu_ms_per_item", f"{mode}_cpu_ms_per_item")
    report.target("async_vs_limit", "async_fps", "limit_fps", 0.90)
    report.target("video_vs_async", "video_fps", "async_fps", 0.95)
    report.target("sync_vs_plain", "sync_fps", "plain_fps", 1.0)
