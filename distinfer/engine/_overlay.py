"""Drawing predictions on images and video frames."""

from __future__ import annotations

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
    another size (a reduced decode, a resized frame) they are scaled to it.

    >>> from distinfer import Annotation, Prediction
    >>> img = np.zeros((40, 60, 3), np.uint8)
    >>> out = draw_prediction(img, Prediction([Annotation("a", 0.5, (5, 5, 30, 30))], 60, 40))
    >>> bool(out.any()), bool(img.any())
    (True, False)
    """
    canvas = image.copy() if copy else image
    h, w = canvas.shape[:2]
    sx = w / prediction.width if prediction.width else 1.0
    sy = h / prediction.height if prediction.height else 1.0
    thickness = max(1, round(min(h, w) / 400))
    font_scale = max(0.35, min(h, w) / 1200)
    for ann in prediction.annotations:
        colour = _colour(ann.class_label or ann.label)
        if ann.polygon:
            pts = np.asarray(ann.polygon, np.float32).reshape(-1, 2) * (sx, sy)
            cv2.polylines(canvas, [pts.round().astype(np.int32)], True, colour, thickness)
        x1, y1, x2, y2 = (
            round(v) for v in (ann.box[0] * sx, ann.box[1] * sy, ann.box[2] * sx, ann.box[3] * sy)
        )
        if not ann.polygon:
            cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
        # OCR lines show their text; everything else its label(s) and score(s).
        if ann.text is not None:
            caption = ann.text
        else:
            caption = f"{ann.label} {ann.score:.2f}"
            if ann.class_label is not None:
                caption += f" | {ann.class_label} {ann.class_score or 0:.2f}"
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
