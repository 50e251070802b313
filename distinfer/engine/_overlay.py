"""Drawing predictions on images and video frames."""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np

from ._prediction import Prediction

_PALETTE = [
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (0, 128, 128),
    (170, 110, 40),
]


def _colour(label: str) -> tuple[int, int, int]:
    return _PALETTE[sum(label.encode()) % len(_PALETTE)]


def draw_prediction(image: np.ndarray, prediction: Prediction, *, copy: bool = True) -> np.ndarray:
    """Draw boxes (or polygons), labels, scores and text on an RGB image.

    Coordinates are in the prediction's source pixels; when ``image`` has
    another size (a reduced decode, a resized frame) they are scaled to it. Reads
    the prediction's columns: all boxes and polygons are scaled at once, and each
    box costs only its drawing calls.

    >>> from distinfer import Annotation, Prediction
    >>> img = np.zeros((40, 60, 3), np.uint8)
    >>> out = draw_prediction(img, Prediction([Annotation("a", 0.5, (5, 5, 30, 30))], 60, 40))
    >>> bool(out.any()), bool(img.any())
    (True, False)
    """
    canvas = image.copy() if copy else image
    n = len(prediction.boxes)
    if n == 0:
        return canvas
    h, w = canvas.shape[:2]
    sx = w / prediction.width if prediction.width else 1.0
    sy = h / prediction.height if prediction.height else 1.0
    thickness = max(1, round(min(h, w) / 400))
    font_scale = max(0.35, min(h, w) / 1200)
    labels = prediction.labels
    boxes = np.rint(prediction.boxes.astype(np.float64) * (sx, sy, sx, sy)).astype(int).tolist()
    polygons: list[np.ndarray | None] = [None] * n
    if prediction.polygon_offsets is not None and prediction.polygon_points is not None:
        points = np.rint(np.multiply(prediction.polygon_points, (sx, sy))).astype(np.int32)
        bounds = prediction.polygon_offsets.tolist()
        polygons = [points[a:b] if b > a else None for a, b in itertools.pairwise(bounds)]
    class_ids = prediction.class_ids.tolist() if prediction.class_ids is not None else [-1] * n
    class_scores = (
        prediction.class_scores.tolist() if prediction.class_scores is not None else [None] * n
    )
    texts = prediction.texts if prediction.texts is not None else (None,) * n
    for i, (label_id, score) in enumerate(
        zip(prediction.label_ids.tolist(), prediction.scores.tolist(), strict=True)
    ):
        label = labels[label_id]
        class_label = labels[class_ids[i]] if class_ids[i] >= 0 else None
        colour = _colour(class_label or label)
        x1, y1, x2, y2 = boxes[i]
        if polygons[i] is not None:
            cv2.polylines(canvas, [polygons[i]], True, colour, thickness)
        else:
            cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
        # OCR lines show their text; everything else its label(s) and score(s).
        caption = texts[i]
        if caption is None:
            caption = f"{label} {score:.2f}"
            if class_label is not None:
                class_score = class_scores[i]
                shown = 0.0 if class_score is None or math.isnan(class_score) else class_score
                caption += f" | {class_label} {shown:.2f}"
        cv2.putText(
            canvas,
            caption,
            (x1, max(y1 - 3, 10)),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            colour,
            thickness,
            cv2.LINE_AA,
        )
    return canvas
