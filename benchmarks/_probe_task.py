"""The engine probe's task: the detector's graph fed a ready canvas, and nothing else."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from distinfer import Prediction
from distinfer.models import InferFn, task_from_model
from distinfer.models._task import NO_BATCHES, predict_each
from distinfer.models.ppocr import DET_FIRST_USE, det_stage


class InferOnly:
    """The detector's graph fed a ready canvas: no decode, no letterbox, no DB."""

    kind = "probe-infer-only"
    batch_sizes: Mapping[str, int] = NO_BATCHES
    lazy_stages: frozenset[str] = DET_FIRST_USE

    def __init__(self) -> None:
        self.inner = task_from_model("ppocr-det")

    def graphs(self) -> Mapping[str, ov.Model]:
        return self.inner.graphs()

    def decode_scale(self, width: int, height: int) -> int:
        return 1

    def preprocess(self, image: np.ndarray) -> None:
        return None

    def predict(self, image: np.ndarray, infer: InferFn, size: tuple[int, int]) -> Prediction:
        infer(det_stage(image.shape[1], image.shape[0]), [image])
        return Prediction(width=size[0], height=size[1])

    def predict_many(
        self,
        images: Sequence[np.ndarray],
        infer: InferFn,
        source_sizes: Sequence[tuple[int, int]],
        prepared: Sequence[Any] | None = None,
    ) -> list[Prediction]:
        return predict_each(self, images, infer, source_sizes)

    def save(self, folder: Path) -> dict[str, Any]:
        raise NotImplementedError
