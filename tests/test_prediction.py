"""``Prediction`` as columns: built from arrays or from ``Annotation``s, the same either way."""

from __future__ import annotations

import math
import pickle
from typing import Any

import numpy as np
import pytest

from distinfer import Annotation, Prediction

QUAD = (10.0, 20.0, 110.0, 20.0, 110.0, 40.0, 10.0, 40.0)


def ocr_line(i: int) -> Annotation:
    return Annotation(
        "text",
        0.5 + i / 100,
        (10.0 + i, 20.0, 110.0 + i, 40.0),
        polygon=QUAD,
        text=f"line {i}",
        class_label="180" if i % 2 else "0",
        class_score=0.75,
    )


def test_columns_from_annotations_keep_the_annotations_given() -> None:
    given = [ocr_line(0), ocr_line(1), Annotation("cat", 0.25, (0, 0, 4, 4))]
    p = Prediction(given, width=200, height=100, text="line 0\nline 1")

    assert p.annotations == tuple(given)  # the very values given (float64)
    assert p.boxes.dtype == np.float32 and p.boxes.shape == (3, 4)
    assert p.labels == ("text", "cat", "0", "180")  # one table: labels, then class labels
    assert p.label_ids.tolist() == [0, 0, 1] and p.class_ids.tolist() == [2, 3, -1]
    assert math.isnan(p.class_scores[2]) and p.texts == ("line 0", "line 1", None)
    assert p.polygon_offsets.tolist() == [0, 4, 8, 8] and p.polygon_points.shape == (8, 2)


def test_annotations_from_arrays_are_built_once_on_first_use() -> None:
    p = Prediction.from_arrays(
        boxes=np.array([[1, 2, 3, 4], [5, 6, 7, 8]], np.float32),
        scores=np.array([0.5, 1.0], np.float32),
        label_ids=np.array([1, 0]),
        labels=("dog", "cat"),
        width=10,
        height=10,
        polygon_offsets=[0, 0, 3],  # the first box has no polygon
        polygon_points=[[5, 6], [7, 6], [7, 8]],
        class_ids=[-1, 0],
        class_scores=[np.nan, 0.5],
    )

    first = p.annotations
    assert first is p.annotations
    assert [(a.label, a.score, a.box, a.polygon) for a in first] == [
        ("cat", 0.5, (1, 2, 3, 4), None),
        ("dog", 1.0, (5, 6, 7, 8), (5, 6, 7, 6, 7, 8)),
    ]
    assert [(a.class_label, a.class_score, a.text) for a in first] == [
        (None, None, None),
        ("dog", 0.5, None),
    ]
    assert Prediction(first, width=10, height=10) == p


@pytest.mark.parametrize(
    "annotations",
    [[], [ocr_line(3)], [ocr_line(i) for i in range(25)] + [Annotation("x", 1.0, (0, 0, 1, 1))]],
    ids=["empty", "one", "many"],
)
def test_a_prediction_survives_pickle_and_the_dict_row(annotations: list[Annotation]) -> None:
    p = Prediction(annotations, 640, 480, text="t", tensors={"t": np.arange(6.0).reshape(2, 3)})

    assert pickle.loads(pickle.dumps(p)) == p
    again = Prediction.from_row(p.to_row())
    assert again == p and again.annotations[0:1] == tuple(
        Annotation.from_dict(a.to_dict()) for a in p.annotations[0:1]
    )


def test_prediction_is_compared_by_its_columns_and_tensors() -> None:
    p = Prediction([Annotation("cat", 0.5, (1, 2, 3, 4))], 8, 8)

    assert p == Prediction([Annotation("cat", 0.5, (1, 2, 3, 4))], 8, 8)
    assert p != Prediction([Annotation("dog", 0.5, (1, 2, 3, 4))], 8, 8)
    assert p != Prediction([Annotation("cat", 0.5, (1, 2, 3, 4))], 8, 8, tensors={"x": np.ones(2)})
    assert Prediction.empty(4, 3) == Prediction((), 4, 3)
    assert "1 boxes" in repr(p)


def test_an_empty_polygon_is_no_polygon() -> None:
    assert Annotation("a", 0.5, (0, 0, 1, 1), polygon=()).polygon is None


GOOD: dict[str, Any] = {
    "boxes": [[0, 0, 2, 2]],
    "scores": [0.5],
    "label_ids": [0],
    "labels": ["a"],
    "width": 4,
    "height": 4,
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"boxes": [[0, 0, 2]]}, r"boxes: expected an N x 4 array .* got \(1, 3\)"),
        ({"boxes": [[3, 0, 2, 2]]}, r"boxes: expected values finite with x1 <= x2 .* \(box 0\)"),
        ({"boxes": [[0, 0, np.nan, 2]]}, "boxes: expected values finite"),
        ({"scores": [0.5, 0.5]}, r"scores: expected 1 values, got shape \(2,\)"),
        ({"scores": [1.5]}, r"scores: expected values within \[0, 1\], got 1.5"),
        ({"label_ids": [1]}, r"label_ids: expected values in 0..0, got 1"),
        ({"label_ids": [0.0]}, "label_ids: expected integers, got float64"),
        ({"labels": [3]}, "labels: expected strings"),
        ({"polygon_offsets": [0, 1]}, "expected both polygon_offsets and polygon_points"),
        (
            {"polygon_offsets": [0, 3], "polygon_points": [[0, 0], [1, 1]]},
            r"polygon_offsets: expected N \+ 1 = 2 rising offsets from 0 to the 2 points",
        ),
        ({"texts": ["a", "b"]}, "texts: expected 1 strings"),
        ({"class_ids": [2]}, r"class_ids: expected values in -1..0, got 2"),
        ({"width": -1}, "width and height must be >= 0"),
    ],
)
def test_bad_columns_say_what_was_expected_and_what_came(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Prediction.from_arrays(**{**GOOD, **change})


def test_no_boxes_from_arrays_of_any_empty_shape() -> None:
    p = Prediction.from_arrays([], [], [], (), width=3, height=2, text="")
    assert p.boxes.shape == (0, 4) and p.annotations == () and p == Prediction((), 3, 2, "")


def test_the_arrays_given_are_not_copied() -> None:
    boxes = np.array([[0, 0, 2, 2]], np.float32)
    p = Prediction.from_arrays(boxes, np.array([0.5], np.float32), np.array([0], np.int32), ["a"],
                               width=4, height=4)  # fmt: skip
    assert p.boxes is boxes
