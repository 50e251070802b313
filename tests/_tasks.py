"""A tiny real task for engine tests: OpenVINO computes the mean colour; the host
side can be made slow per item, so completion order is under the test's control."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import openvino as ov
import openvino.opset13 as ops

from distinfer import Annotation, Prediction
from distinfer.models import InferFn, predict_each
from distinfer.models._task import NO_BATCHES, NO_LAZY_STAGES

SIZE = 4


def mean_colour_graph() -> ov.Model:
    """u8 NHWC RGB 4x4 in, the per-channel mean (f32, shape 1x3) out."""
    x = ops.parameter([1, SIZE, SIZE, 3], ov.Type.u8, name="image")
    mean = ops.reduce_mean(ops.convert(x, ov.Type.f32), ops.constant(np.array([1, 2])), False)
    return ov.Model([ops.result(mean)], [x], "mean_colour")


class MeanColourTask:
    """``delay_s(image)`` seconds of host work after inference (default none)."""

    kind = "test-mean-colour"
    batch_sizes = NO_BATCHES
    lazy_stages = NO_LAZY_STAGES

    def __init__(self, delay_s: Callable[[np.ndarray], float] | None = None) -> None:
        self.delay_s = delay_s
        self.lock = threading.Lock()
        self.running = 0
        self.max_running = 0
        self.threads: set[str] = set()

    def graphs(self) -> Mapping[str, ov.Model]:
        return {"mean": mean_colour_graph()}

    def decode_scale(self, width: int, height: int) -> int:
        return 1

    def preprocess(self, image: np.ndarray) -> None:
        return None

    def predict(
        self, image: np.ndarray, infer: InferFn, source_size: tuple[int, int]
    ) -> Prediction:
        with self.lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            self.threads.add(threading.current_thread().name)
        try:
            small = cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
            (mean,) = infer("mean", [small])[0]
            if self.delay_s is not None:
                time.sleep(self.delay_s(image))
            label = ("red", "green", "blue")[int(np.argmax(mean[0]))]
            w, h = source_size
            return Prediction(
                [Annotation(label, 1.0, (0, 0, w, h))], w, h, tensors={"mean": mean[0]}
            )
        finally:
            with self.lock:
                self.running -= 1

    def predict_many(
        self,
        images: list[np.ndarray],
        infer: InferFn,
        source_sizes: list[tuple[int, int]],
        prepared: list[Any] | None = None,
    ) -> list[Prediction]:
        return predict_each(self, images, infer, source_sizes)

    def save(self, folder: Path) -> dict[str, Any]:
        raise NotImplementedError("test task")


def solid(rgb: tuple[int, int, int], size: tuple[int, int] = (32, 24)) -> np.ndarray:
    """A width x height image of one colour."""
    w, h = size
    return np.full((h, w, 3), rgb, np.uint8)


class BatchedMeanColourTask(MeanColourTask):
    """With ``predict_many``: one ``infer`` call for a whole batch (recorded in ``calls``).

    An image whose first pixel is ``POISON`` breaks post-processing, in both paths.
    """

    POISON = 13

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def predict_many(
        self,
        images: list[np.ndarray],
        infer: InferFn,
        source_sizes: list[tuple[int, int]],
        prepared: list[Any] | None = None,
    ) -> list[Prediction]:
        small = [cv2.resize(i, (SIZE, SIZE), interpolation=cv2.INTER_AREA) for i in images]
        outputs = infer("mean", small)
        self.calls.append(len(images))
        if any(i[0, 0, 0] == self.POISON for i in images):
            raise ValueError("poisoned batch")
        return [
            Prediction(width=w, height=h, tensors={"mean": out[0][0]})
            for out, (w, h) in zip(outputs, source_sizes, strict=True)
        ]

    def predict(
        self, image: np.ndarray, infer: InferFn, source_size: tuple[int, int]
    ) -> Prediction:
        if image[0, 0, 0] == self.POISON:
            raise ValueError("poisoned image")
        return super().predict(image, infer, source_size)
