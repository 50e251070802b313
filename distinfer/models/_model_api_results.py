"""model_api's results as a prediction's columns: boxes, scores, names, polygons.

model_api hands back Python result objects (arrays of boxes for detection, label
objects for classification, contours for segmentation). Each converter here turns
one into a ``Found``: boxes scaled to source pixels for all boxes at once, one
name per box, and the polygons of the kinds that have them; ``Found.prediction``
builds the ``Prediction`` from those columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..engine._prediction import Prediction


class Frame:
    """Where one image came from: the scale from the image given to source pixels."""

    __slots__ = ("image_hw", "scale", "source_wh")

    def __init__(self, image: np.ndarray, source_wh: tuple[int, int]) -> None:
        self.image_hw = (int(image.shape[0]), int(image.shape[1]))
        self.source_wh = source_wh
        self.scale: np.ndarray = np.array(
            [source_wh[0] / image.shape[1], source_wh[1] / image.shape[0]]
        )

    def boxes(self, boxes: Any) -> np.ndarray:
        """``N x 4`` image-pixel boxes in source pixels (float64)."""
        scaled: np.ndarray = np.asarray(boxes, np.float64).reshape(-1, 4) * np.tile(self.scale, 2)
        return scaled

    def polygon(self, contour: np.ndarray) -> np.ndarray:
        """A contour's corners in source pixels, ``K x 2``.

        Douglas-Peucker with epsilon 0 drops only collinear points: lossless, and a
        rectangle's hundreds of boundary pixels become its 4 corners.
        """
        simple = cv2.approxPolyDP(contour.reshape(-1, 1, 2).astype(np.int32), 0, True)
        points: np.ndarray = simple.reshape(-1, 2).astype(np.float64) * self.scale
        return points

    def contour_box(self, contour: np.ndarray) -> np.ndarray:
        x, y, w, h = cv2.boundingRect(contour.reshape(-1, 1, 2).astype(np.int32))
        box: np.ndarray = self.boxes([x, y, x + w, y + h])[0]
        return box


@dataclass
class Found:
    """What a model_api result holds, as columns: boxes in source pixels, scores, one
    name per box, and a polygon (``K x 2``) or None per box when the kind has them."""

    boxes: np.ndarray
    scores: np.ndarray
    names: list[str]
    polygons: list[np.ndarray | None] | None = None

    def prediction(self, source_wh: tuple[int, int]) -> Prediction:
        table: dict[str, int] = {}
        ids = np.array([table.setdefault(name, len(table)) for name in self.names], np.int32)
        offsets = points = None
        if self.polygons is not None:
            found = [p if p is not None else _NO_POINTS for p in self.polygons]
            offsets = np.concatenate([[0], np.cumsum([len(p) for p in found])])
            points = np.concatenate([_NO_POINTS, *found]).astype(np.float32)
        return Prediction.from_arrays(
            self.boxes.astype(np.float32).reshape(-1, 4),
            # Softmax in float32 can land a hair above 1.
            np.clip(np.asarray(self.scores, np.float64), 0.0, 1.0).astype(np.float32),
            ids,
            tuple(table),
            width=source_wh[0],
            height=source_wh[1],
            polygon_offsets=offsets,
            polygon_points=points,
        )


_NO_POINTS = np.zeros((0, 2), np.float64)


def _names(names: Sequence[str] | None, indices: Any, wrapper: Any) -> list[str]:
    # Some wrappers (YOLOX) leave DetectionResult's placeholder name "#".
    given = list(names or ())
    return [
        str(given[i]) if i < len(given) and given[i] and given[i] != "#"
        else str(wrapper.get_label_name(index))
        for i, index in enumerate(np.asarray(indices).reshape(-1).tolist())
    ]  # fmt: skip


def _classification(result: Any, wrapper: Any, frame: Frame) -> Found:
    top = list(result.top_labels or ())
    whole = np.array([0.0, 0.0, *frame.source_wh])
    return Found(
        np.tile(whole, (len(top), 1)),
        np.array([label.confidence for label in top], np.float64),
        [label.name or wrapper.get_label_name(int(label.id)) for label in top],
    )


def _detection(result: Any, wrapper: Any, frame: Frame) -> Found:
    return Found(
        frame.boxes(result.bboxes),
        np.asarray(result.scores, np.float64).reshape(-1),
        _names(result.label_names, result.labels, wrapper),
    )


def _largest_contour(mask: np.ndarray) -> np.ndarray | None:
    found, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return max(found, key=cv2.contourArea) if found else None


def _instance_segmentation(result: Any, wrapper: Any, frame: Frame) -> Found:
    found = _detection(result, wrapper, frame)
    polygons: list[np.ndarray | None] = []
    for mask in result.masks[: len(found.names)]:
        contour = None
        if mask.shape == frame.image_hw:  # full-image masks (postprocess_semantic_masks)
            contour = _largest_contour(mask)
        polygons.append(frame.polygon(contour) if contour is not None else None)
    found.polygons = polygons
    return found


def _segmentation(result: Any, wrapper: Any, frame: Frame) -> Found:
    soft = getattr(result, "soft_prediction", None)
    if soft is not None and soft.ndim == 3 and soft.shape[2] > 1:
        found = [(c.label, c.probability, c.shape) for c in wrapper.get_contours(result)]
    else:  # the model outputs class indices: no probabilities, contours per class
        hard = getattr(result, "resultImage", result)
        found = []
        for index in np.unique(hard).tolist():
            if index == 0:
                continue  # background
            mask = (hard == index).astype(np.uint8)
            contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            found += [(wrapper.get_label_name(index - 1), 1.0, c) for c in contours]
    shapes = [np.asarray(shape) for _, _, shape in found]
    return Found(
        np.array([frame.contour_box(shape) for shape in shapes]).reshape(-1, 4),
        np.array([probability for _, probability, _ in found], np.float64),
        [str(label) for label, _, _ in found],
        [frame.polygon(shape) for shape in shapes],
    )


Converter = Callable[[Any, Any, Frame], Found]
CONVERTERS: dict[str, Converter] = {
    "classification": _classification,
    "detection": _detection,
    "segmentation": _segmentation,
    "instance_segmentation": _instance_segmentation,
}
