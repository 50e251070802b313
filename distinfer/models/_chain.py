"""Task chains, as Geti's multi-task projects: detect, then classify each box's crop."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import openvino as ov

from .._errors import ModelError
from ..engine._prediction import Prediction
from ._task import InferFn, Task

logger = logging.getLogger(__name__)

DETECTOR_PREFIX = "detector/"
CLASSIFIER_PREFIX = "classifier/"


@runtime_checkable
class BatchTask(Task, Protocol):
    """A task that can predict several images with one ``infer`` call."""

    def predict_many(
        self,
        images: Sequence[np.ndarray],
        infer: InferFn,
        source_sizes: Sequence[tuple[int, int]],
    ) -> list[Prediction]: ...


def _prefixed(infer: InferFn, prefix: str) -> InferFn:
    def run(stage: str, inputs: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
        return infer(prefix + stage, inputs)

    return run


def _crop_box(
    box: tuple[float, ...], sx: float, sy: float, width: int, height: int
) -> tuple[int, int, int, int]:
    """A source-pixel box as integer image pixels (outward rounding, clipped)."""
    x1, y1, x2, y2 = box
    return (
        max(0, math.floor(x1 * sx)),
        max(0, math.floor(y1 * sy)),
        min(width, math.ceil(x2 * sx)),
        min(height, math.ceil(y2 * sy)),
    )


class ChainTask:
    """Detection, then the crop of every detected box classified by a second model.

    Each annotation keeps the detector's box, label and score and gets the
    classifier's top label and score as ``class_label``/``class_score`` (None
    when the box is empty or the classifier names no label). All crops of one
    image go to the engine in one ``infer`` call, so they run in parallel on the
    async queue. Both models' graphs are compiled on the same engine, their
    stage names prefixed with ``detector/`` and ``classifier/``.

    >>> chain = ChainTask(ModelApiTask("det.xml"), ModelApiTask("cls.xml"))  # doctest: +SKIP
    >>> sorted(chain.graphs())                                               # doctest: +SKIP
    ['classifier/model', 'detector/model']
    """

    kind = "chain"

    def __init__(self, detector: Task, classifier: BatchTask) -> None:
        if not isinstance(classifier, BatchTask):
            raise ModelError(
                f"the second task of a chain must predict batches of crops; "
                f"{classifier.kind!r} cannot"
            )
        self.detector = detector
        self.classifier = classifier

    def graphs(self) -> Mapping[str, ov.Model]:
        graphs = {DETECTOR_PREFIX + k: g for k, g in self.detector.graphs().items()}
        graphs.update({CLASSIFIER_PREFIX + k: g for k, g in self.classifier.graphs().items()})
        return graphs

    @property
    def lazy_stages(self) -> frozenset[str]:
        """The two tasks' ``lazy_stages``, prefixed like their graphs."""
        return frozenset(
            [DETECTOR_PREFIX + s for s in getattr(self.detector, "lazy_stages", ())]
            + [CLASSIFIER_PREFIX + s for s in getattr(self.classifier, "lazy_stages", ())]
        )

    def decode_scale(self, width: int, height: int) -> int:
        # The crops are classified at the resolution decoded: a small object in a
        # reduced decode would lose the detail the classifier needs.
        return 1

    def predict(
        self, image: np.ndarray, infer: InferFn, source_size: tuple[int, int]
    ) -> Prediction:
        detected = self.detector.predict(image, _prefixed(infer, DETECTOR_PREFIX), source_size)
        height, width = image.shape[:2]
        sx, sy = width / source_size[0], height / source_size[1]
        crops, owners = [], []
        for i, annotation in enumerate(detected.annotations):
            x1, y1, x2, y2 = _crop_box(annotation.box, sx, sy, width, height)
            if x2 - x1 < 1 or y2 - y1 < 1:
                continue
            crops.append(image[y1:y2, x1:x2])
            owners.append(i)
        classes: list[Prediction] = []
        if crops:
            sizes = [(c.shape[1], c.shape[0]) for c in crops]
            classes = self.classifier.predict_many(
                crops, _prefixed(infer, CLASSIFIER_PREFIX), sizes
            )
        annotations = list(detected.annotations)
        for i, prediction in zip(owners, classes, strict=True):
            if prediction.annotations:
                top = prediction.annotations[0]
                annotations[i] = dataclasses.replace(
                    annotations[i], class_label=top.label, class_score=top.score
                )
        return dataclasses.replace(detected, annotations=annotations)

    def save(self, folder: Path) -> dict[str, Any]:
        """Each model in its own subfolder: ``detector/`` and ``classifier/``."""
        folder = Path(folder)
        return {
            "kind": self.kind,
            "detector": self.detector.save(folder / "detector"),
            "classifier": self.classifier.save(folder / "classifier"),
        }

    @classmethod
    def load(cls, folder: Path, config: Mapping[str, Any]) -> ChainTask:
        from ._registry import task_from_config  # the registry imports this module

        folder = Path(folder)
        detector = task_from_config(folder / "detector", config["detector"])
        classifier = task_from_config(folder / "classifier", config["classifier"])
        return cls(detector, classifier)  # type: ignore[arg-type]  # checked in __init__
