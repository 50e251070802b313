from __future__ import annotations

import numpy as np

from distinfer import Annotation, Prediction, draw_prediction


def test_boxes_are_scaled_from_source_pixels_to_the_image() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    # source is twice as large as the image: the box lands at (20, 10)-(100, 60)
    prediction = Prediction([Annotation("cat", 0.5, (40, 20, 200, 120))], width=400, height=200)
    out = draw_prediction(image, prediction)
    assert not image.any()  # the input is untouched
    assert out[35, 20].any() and out[35, 100].any()  # left and right edges, mid-height
    assert not out[35, 60].any()  # inside the box
    assert not out[90, 150].any()  # far outside


def test_polygons_and_text_are_drawn() -> None:
    image = np.full((60, 120, 3), 255, np.uint8)
    line = Annotation(
        "text", 0.9, (10, 20, 110, 40), polygon=(10, 20, 110, 20, 110, 40, 10, 40), text="hello"
    )
    out = draw_prediction(image, Prediction([line], 120, 60))
    assert (out[20, 60] != 255).any()  # top edge of the polygon
    assert (out[:20] != 255).any()  # the caption above the line


def draw_per_box(image: np.ndarray, prediction: Prediction) -> np.ndarray:
    """The drawing as it was, an ``Annotation`` at a time (the oracle of the next test)."""
    import cv2

    from distinfer.engine._overlay import _colour

    canvas = image.copy()
    h, w = canvas.shape[:2]
    sx, sy = w / prediction.width, h / prediction.height
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


def test_drawing_from_the_columns_equals_drawing_each_annotation() -> None:
    rng = np.random.default_rng(0)
    found = []
    for i in range(30):
        x, y, w, h = (float(v) for v in rng.uniform(1, 300, 4))
        found.append(
            Annotation(
                ("cat", "dog", "text")[i % 3],
                float(rng.uniform()),
                (x, y, x + w, y + h),
                polygon=tuple(rng.uniform(0, 400, 8).tolist()) if i % 3 == 0 else None,
                text="hello" if i % 4 == 0 else None,
                class_label="red" if i % 5 == 0 else None,
                class_score=0.25 if i % 10 == 0 else None,
            )
        )
    prediction = Prediction(found, 640, 480)
    image = np.full((300, 400, 3), 200, np.uint8)  # smaller than the source: scaled

    assert np.array_equal(draw_prediction(image, prediction), draw_per_box(image, prediction))
