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
