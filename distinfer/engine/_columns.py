"""The columns of a ``Prediction``: checked when given as arrays, or taken from ``Annotation``s.

Checks run once per prediction over whole arrays (a few microseconds), never box
by box, and say what was expected and what came.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from ._annotation import Annotation

#: Scores may exceed 1 by this much (softmax in float32 can land a hair above it).
SCORE_SLACK = 1e-6
#: The dtype of label and class ids.
ID = np.int32


def columns_of(annotations: Sequence[Annotation]) -> dict[str, Any]:
    """The columns of ``Annotation`` objects (already validated one by one)."""
    n = len(annotations)
    table: dict[str, int] = {}
    columns: dict[str, Any] = {
        "boxes": np.array([a.box for a in annotations], np.float32).reshape(n, 4),
        "scores": np.array([a.score for a in annotations], np.float32),
        "label_ids": np.array([table.setdefault(a.label, len(table)) for a in annotations], ID),
        "polygon_offsets": None,
        "polygon_points": None,
        "texts": None,
        "class_ids": None,
        "class_scores": None,
    }
    polygons = [a.polygon or () for a in annotations]
    if any(polygons):
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum([len(p) // 2 for p in polygons], out=offsets[1:])
        columns["polygon_offsets"] = offsets
        flat = [v for p in polygons for v in p]
        columns["polygon_points"] = np.array(flat, np.float32).reshape(-1, 2)
    if any(a.text is not None for a in annotations):
        columns["texts"] = tuple(a.text for a in annotations)
    if any(a.class_label is not None or a.class_score is not None for a in annotations):
        columns["class_ids"] = np.array(
            [-1 if a.class_label is None else table.setdefault(a.class_label, len(table))
             for a in annotations],
            ID,
        )  # fmt: skip
        columns["class_scores"] = np.array(
            [math.nan if a.class_score is None else a.class_score for a in annotations],
            np.float32,
        )
    columns["labels"] = tuple(table)
    return columns


def checked_columns(
    boxes: ArrayLike,
    scores: ArrayLike,
    label_ids: ArrayLike,
    labels: Sequence[str],
    polygon_offsets: ArrayLike | None,
    polygon_points: ArrayLike | None,
    texts: Sequence[str | None] | None,
    class_ids: ArrayLike | None,
    class_scores: ArrayLike | None,
) -> dict[str, Any]:
    """The columns as arrays of their dtypes, or ``ValueError`` naming what is wrong."""
    box_array = np.asarray(boxes, np.float32)
    if box_array.size == 0:
        box_array = box_array.reshape(0, 4)
    if box_array.ndim != 2 or box_array.shape[1] != 4:
        raise ValueError(f"boxes: expected an N x 4 array (x1, y1, x2, y2), got {box_array.shape}")
    n = len(box_array)
    table = tuple(labels)
    if not all(isinstance(label, str) for label in table):
        raise ValueError(f"labels: expected strings, got {table!r}")
    ids = per_box_array("label_ids", label_ids, n, ID)
    score_array = per_box_array("scores", scores, n, np.float32)
    columns: dict[str, Any] = {
        "boxes": box_array,
        "scores": score_array,
        "label_ids": ids,
        "labels": table,
        "polygon_offsets": None,
        "polygon_points": None,
        "texts": None,
        "class_ids": None,
        "class_scores": None,
    }
    if n:
        x1, y1, x2, y2 = box_array.T
        bad = ~(np.isfinite(box_array).all(axis=1) & (x1 <= x2) & (y1 <= y2))
        _refuse("boxes", bad, box_array, "finite with x1 <= x2 and y1 <= y2")
        bad = ~((score_array >= 0) & (score_array <= 1 + SCORE_SLACK))
        _refuse("scores", bad, score_array, "within [0, 1]")
        _refuse("label_ids", (ids < 0) | (ids >= len(table)), ids, f"in 0..{len(table) - 1}")
    if (polygon_offsets is None) != (polygon_points is None):
        raise ValueError("polygons: expected both polygon_offsets and polygon_points, got one")
    if polygon_offsets is not None and polygon_points is not None:
        points = np.asarray(polygon_points, np.float32)
        if points.size == 0:
            points = points.reshape(0, 2)
        if points.ndim != 2 or points.shape[1] != 2:
            raise ValueError(f"polygon_points: expected a P x 2 array (x, y), got {points.shape}")
        offsets = per_box_array("polygon_offsets", polygon_offsets, n + 1, np.int64)
        if offsets[0] != 0 or offsets[-1] != len(points) or (np.diff(offsets) < 0).any():
            raise ValueError(
                f"polygon_offsets: expected N + 1 = {n + 1} rising offsets from 0 to the "
                f"{len(points)} points, got {offsets.tolist()[:8]}{'...' if n > 7 else ''}"
            )
        columns["polygon_offsets"], columns["polygon_points"] = offsets, points
    if texts is not None:
        found = tuple(texts)
        if len(found) != n or not all(t is None or isinstance(t, str) for t in found):
            raise ValueError(f"texts: expected {n} strings (or None), one per box, got {found!r}")
        columns["texts"] = found
    if class_ids is not None:
        classes = per_box_array("class_ids", class_ids, n, ID)
        bad = (classes < -1) | (classes >= len(table))
        _refuse("class_ids", bad, classes, f"in -1..{len(table) - 1}")
        columns["class_ids"] = classes
    if class_scores is not None:
        columns["class_scores"] = per_box_array("class_scores", class_scores, n, np.float32)
    return columns


def per_box_array(name: str, values: ArrayLike, n: int, dtype: type[np.generic]) -> np.ndarray:
    """``values`` as an ``(n,)`` array of ``dtype`` (ids: integers only)."""
    array = np.asarray(values)
    if array.size == 0:
        array = array.reshape(0)
    if dtype is not np.float32 and array.size and array.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected integers, got {array.dtype}")
    if array.shape != (n,):
        raise ValueError(f"{name}: expected {n} values, got shape {array.shape}")
    return array.astype(dtype, copy=False)


def _refuse(name: str, bad: np.ndarray, values: np.ndarray, expected: str) -> None:
    if bad.any():
        i = int(np.argmax(bad))
        got = values[i].tolist()
        raise ValueError(f"{name}: expected values {expected}, got {got} (box {i})")
