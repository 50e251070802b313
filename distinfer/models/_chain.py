"""Task chains, as Geti's multi-task projects: detect, then classify each box's crop."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from .._errors import ModelError
from ..engine._prediction import Prediction
from ._task import InferFn, Task, infer_all

logger = logging.getLogger(__name__)

DETECTOR_PREFIX = "detector/"
CLASSIFIER_PREFIX = "classifier/"


class _Prefixed:
    """A part's ``infer``: its stage names prefixed, ``infer_all`` kept."""

    def __init__(self, infer: InferFn, prefix: str) -> None:
        self.infer, self.prefix = infer, prefix

    def __call__(self, stage: str, inputs: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
        return self.infer(self.prefix + stage, inputs)

    def many(self, calls: Mapping[str, Sequence[np.ndarray]]) -> dict[str, list[list[np.ndarray]]]:
        found = infer_all(self.infer, {self.prefix + stage: x for stage, x in calls.items()})
        return {stage: found[self.prefix + stage] for stage in calls}


def _crop_boxes(boxes: np.ndarray, sx: float, sy: float, width: int, height: int) -> np.ndarray:
    """Source-pixel boxes as integer image pixels (outward rounding, clipped), ``N x 4``."""
    scaled = boxes.astype(np.float64) * (sx, sy, sx, sy)
    low = np.maximum(np.floor(scaled[:, :2]), 0)
    high = np.minimum(np.ceil(scaled[:, 2:]), (width, height))
    return np.concatenate([low, high], axis=1).astype(np.int64)


class ChainTask:
    """Detection, then the crop of every detected box classified by a second model.

    Each annotation keeps the detector's box, label and score and gets the
    classifier's top label and score as ``class_label``/``class_score`` (None
    when the box is empty or the classifier names no label). The images of a
    ``predict_many`` go to the detector in one ``infer`` call and all their crops to
    the classifier in one more, so they run in parallel on the async requests. Both
    models' graphs are compiled on the same engine, their stage names prefixed with
    ``detector/`` and ``classifier/``.

    >>> chain = ChainTask(ModelApiTask("det.xml"), ModelApiTask("cls.xml"))  # doctest: +SKIP
    >>> sorted(chain.graphs())                                               # doctest: +SKIP
    ['classifier/model', 'detector/model']
    """

    kind = "chain"

    def __init__(self, detector: Task, classifier: Task) -> None:
        for part, task in (("detector", detector), ("classifier", classifier)):
            if not isinstance(task, Task):
                raise ModelError(
                    f"the {part} of a chain is not a task: {type(task).__name__} lacks some of "
                    "kind, batch_sizes, lazy_stages, graphs, decode_scale, preprocess, "
                    "predict, predict_many and save"
                )
        self.detector = detector
        self.classifier = classifier
        self.batch_sizes = {
            **{DETECTOR_PREFIX + k: n for k, n in detector.batch_sizes.items()},
            **{CLASSIFIER_PREFIX + k: n for k, n in classifier.batch_sizes.items()},
        }
        self.lazy_stages = frozenset(
            [DETECTOR_PREFIX + s for s in detector.lazy_stages]
            + [CLASSIFIER_PREFIX + s for s in classifier.lazy_stages]
        )

    def graphs(self) -> Mapping[str, ov.Model]:
        graphs = {DETECTOR_PREFIX + k: g for k, g in self.detector.graphs().items()}
        graphs.update({CLASSIFIER_PREFIX + k: g for k, g in self.classifier.graphs().items()})
        return graphs

    def decode_scale(self, width: int, height: int) -> int:
        # The crops are classified at the resolution decoded: a small object in a
        # reduced decode would lose the detail the classifier needs.
        return 1

    def predict(
        self, image: np.ndarray, infer: InferFn, source_size: tuple[int, int]
    ) -> Prediction:
        return self.predict_many([image], infer, [source_size])[0]

    def preprocess(self, image: np.ndarray) -> Any:
        """The detector's: the crops are cut from the pixels after detection."""
        return self.detector.preprocess(image)

    def predict_many(
        self,
        images: Sequence[np.ndarray],
        infer: InferFn,
        source_sizes: Sequence[tuple[int, int]],
        prepared: Sequence[Any] | None = None,
    ) -> list[Prediction]:
        """The images' detections in one ``infer`` call, then every crop of every image
        classified in one more."""
        detected = self.detector.predict_many(
            images, _Prefixed(infer, DETECTOR_PREFIX), source_sizes, prepared
        )
        crops: list[np.ndarray] = []
        owners = []  # per image: the boxes that have a crop
        for image, found, size in zip(images, detected, source_sizes, strict=True):
            height, width = image.shape[:2]
            rects = _crop_boxes(found.boxes, width / size[0], height / size[1], width, height)
            kept = np.flatnonzero((rects[:, 2] > rects[:, 0]) & (rects[:, 3] > rects[:, 1]))
            crops += [image[y1:y2, x1:x2] for x1, y1, x2, y2 in rects[kept].tolist()]
            owners.append(kept)
        classes: list[Prediction] = []
        if crops:
            sizes = [(c.shape[1], c.shape[0]) for c in crops]
            classes = self.classifier.predict_many(
                crops, _Prefixed(infer, CLASSIFIER_PREFIX), sizes
            )
        predictions = []
        start = 0
        for found, kept in zip(detected, owners, strict=True):
            predictions.append(_with_classes(found, kept, classes[start : start + len(kept)]))
            start += len(kept)
        return predictions

    def save(self, folder: Path) -> dict[str, Any]:
        """Each model in its own subfolder: ``detector/`` and ``classifier/``."""
        folder = Path(folder)
        return {
            "kind": self.kind,
            "detector": self.detector.save(folder / "detector"),
            "classifier": self.classifier.save(folder / "classifier"),
        }


def _with_classes(
    detected: Prediction, owners: np.ndarray, classes: Sequence[Prediction]
) -> Prediction:
    """``detected`` with each box in ``owners`` given its crop's top class (the class
    names join the label table)."""
    n = len(detected.boxes)
    labels = list(detected.labels)
    index = {name: i for i, name in reversed(list(enumerate(labels)))}
    class_ids = (
        np.full(n, -1, np.int32) if detected.class_ids is None else detected.class_ids.copy()
    )
    class_scores = (
        np.full(n, np.nan, np.float32)
        if detected.class_scores is None
        else detected.class_scores.copy()
    )
    for i, prediction in zip(owners.tolist(), classes, strict=True):
        if len(prediction.boxes):
            name = prediction.labels[int(prediction.label_ids[0])]
            if name not in index:
                index[name] = len(labels)
                labels.append(name)
            class_ids[i], class_scores[i] = index[name], prediction.scores[0]
    return Prediction.from_arrays(
        detected.boxes,
        detected.scores,
        detected.label_ids,
        labels,
        width=detected.width,
        height=detected.height,
        polygon_offsets=detected.polygon_offsets,
        polygon_points=detected.polygon_points,
        texts=detected.texts,
        class_ids=class_ids,
        class_scores=class_scores,
        text=detected.text,
        tensors=detected.tensors,
    )
