"""Predictions as Arrow: the prediction columns of ``RESULT_SCHEMA``, and back.

``prediction_columns`` concatenates the arrays of many predictions (a unit's) and
wraps them as Arrow arrays: list offsets from the box counts, struct children
from the box columns, labels taken from the label tables by id. No box becomes
a Python object on the way, and no row goes through ``from_pylist``.
``predictions_from_records`` reads rows back into predictions the same way, for
drawing (the annotated video).

>>> p = Prediction.from_arrays([[1, 2, 3, 4]], [0.5], [0], ["cat"], width=8, height=6)
>>> prediction_columns([p, None])["predictions"].to_pylist()[1]
[]
>>> [q == p for q in predictions_from_records(_one_batch(p))]
[True]
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ._columns import ID
from ._prediction import ANNOTATION_TYPE, RESULT_SCHEMA, TENSOR_TYPE, Prediction

#: The prediction columns of ``RESULT_SCHEMA``, in order.
PREDICTION_COLUMNS = ("width", "height", "predictions", "text", "tensors")
_NO_POINTS = np.zeros((0, 2), np.float32)


def prediction_columns(predictions: Sequence[Prediction | None]) -> dict[str, pa.Array]:
    """``PREDICTION_COLUMNS`` for these items, one row each; None is a failed item
    (null width, height and text, no predictions, no tensors)."""
    present = [p for p in predictions if p is not None]
    counts = [0 if p is None else len(p.boxes) for p in predictions]
    failed = np.array([p is None for p in predictions], bool)
    return {
        "width": pa.array(
            [0 if p is None else p.width for p in predictions], pa.int32(), mask=failed
        ),
        "height": pa.array(
            [0 if p is None else p.height for p in predictions], pa.int32(), mask=failed
        ),
        "predictions": pa.ListArray.from_arrays(_offsets(counts), _boxes(present)),
        "text": pa.array([None if p is None else p.text for p in predictions], pa.string()),
        "tensors": _tensors(predictions),
    }


def _offsets(counts: Sequence[int]) -> pa.Array:
    offsets = np.zeros(len(counts) + 1, np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.array(offsets)


def _boxes(present: Sequence[Prediction]) -> pa.StructArray:
    """Every box of ``present``, in order, as one struct array of ``ANNOTATION_TYPE``."""
    with_boxes = [p for p in present if len(p.boxes)]
    if not with_boxes:
        return pa.array([], ANNOTATION_TYPE)
    total = sum(len(p.boxes) for p in with_boxes)
    boxes = np.concatenate([p.boxes for p in with_boxes])
    scores = np.concatenate([p.scores for p in with_boxes])
    # One table: every prediction's labels, its ids shifted past the tables before. The
    # strings are taken from it by reference, never built per box (as a list: pyarrow
    # converts an object array through pandas, which an actor never needs to import).
    table = np.array([label for p in with_boxes for label in p.labels], object)
    starts = np.cumsum([0] + [len(p.labels) for p in with_boxes[:-1]]).tolist()
    label_ids = np.concatenate([p.label_ids + s for p, s in zip(with_boxes, starts, strict=True)])
    children = [
        pa.array(table[label_ids].tolist(), pa.string()),
        pa.array(scores),
        *(pa.array(np.ascontiguousarray(boxes[:, k])) for k in range(4)),
        _texts(with_boxes, total),
        *_classes(with_boxes, table, starts, total),
        _polygons(with_boxes),
    ]
    return pa.StructArray.from_arrays(children, fields=list(ANNOTATION_TYPE))


def _classes(
    with_boxes: Sequence[Prediction], table: np.ndarray, starts: list[int], total: int
) -> tuple[pa.Array, pa.Array]:
    """The class label and class score columns (null where a box has none)."""
    if all(p.class_ids is None and p.class_scores is None for p in with_boxes):
        return pa.nulls(total, pa.string()), pa.nulls(total, pa.float32())
    class_ids = np.concatenate(
        [
            np.where(p.class_ids >= 0, p.class_ids + s, -1)
            if p.class_ids is not None
            else np.full(len(p.boxes), -1)
            for p, s in zip(with_boxes, starts, strict=True)
        ]
    )
    class_scores = np.concatenate(
        [
            p.class_scores if p.class_scores is not None else np.full(len(p.boxes), np.nan)
            for p in with_boxes
        ]
    ).astype(np.float32, copy=False)
    no_class = class_ids < 0
    names = pa.array(table[np.where(no_class, 0, class_ids)].tolist(), pa.string(), mask=no_class)
    return names, pa.array(class_scores, mask=np.isnan(class_scores))


def _texts(with_boxes: Sequence[Prediction], total: int) -> pa.Array:
    if all(p.texts is None for p in with_boxes):
        return pa.nulls(total, pa.string())
    texts = itertools.chain.from_iterable(
        p.texts if p.texts is not None else itertools.repeat(None, len(p.boxes)) for p in with_boxes
    )
    return pa.array(list(texts), pa.string())


def _polygons(with_boxes: Sequence[Prediction]) -> pa.Array:
    """Each box's polygon as a list of ``x, y, x, y, ...``; null where it has none."""
    starts: list[np.ndarray] = []
    valid: list[np.ndarray] = []
    points: list[np.ndarray] = []
    base = 0
    for p in with_boxes:
        if p.polygon_offsets is None or p.polygon_points is None:
            starts.append(np.full(len(p.boxes), base, np.int64))
            valid.append(np.zeros(len(p.boxes), bool))
            continue
        starts.append(p.polygon_offsets[:-1] + base)
        valid.append(np.diff(p.polygon_offsets) > 0)
        points.append(p.polygon_points)
        base += len(p.polygon_points)
    offsets = 2 * np.concatenate([*starts, [base]]).astype(np.int32)
    values = np.concatenate(points).reshape(-1) if points else _NO_POINTS.reshape(-1)
    return pa.ListArray.from_arrays(
        pa.array(offsets), pa.array(values), mask=pa.array(~np.concatenate(valid))
    )


def _tensors(predictions: Sequence[Prediction | None]) -> pa.Array:
    if not any(p is not None and p.tensors for p in predictions):
        return pa.ListArray.from_arrays(_offsets([0] * len(predictions)), pa.array([], TENSOR_TYPE))
    named = [
        (name, np.asarray(value, np.float32))
        for p in predictions
        if p is not None
        for name, value in p.tensors.items()
    ]
    counts = [0 if p is None else len(p.tensors) for p in predictions]
    shapes = [list(value.shape) for _, value in named]
    sizes = [value.size for _, value in named]
    values = np.concatenate([v.reshape(-1) for _, v in named]) if named else np.zeros(0, np.float32)
    struct = pa.StructArray.from_arrays(
        [
            pa.array([name for name, _ in named], pa.string()),
            pa.ListArray.from_arrays(
                _offsets([len(s) for s in shapes]),
                pa.array([d for s in shapes for d in s], pa.int64()),
            ),
            pa.ListArray.from_arrays(_offsets(sizes), pa.array(values, pa.float32())),
        ],
        fields=list(TENSOR_TYPE),
    )
    return pa.ListArray.from_arrays(_offsets(counts), struct)


def predictions_from_records(records: pa.RecordBatch | pa.Table) -> list[Prediction | None]:
    """The prediction of each row (None for a failed row, ``error`` set), from its columns."""
    if isinstance(records, pa.Table):
        records = records.combine_chunks().to_batches()[0] if records.num_rows else None
        if records is None:
            return []
    lists = records.column("predictions")
    offsets = lists.offsets.to_numpy()
    struct = lists.values
    boxes = np.stack(
        [struct.field(k).to_numpy(zero_copy_only=False) for k in ("x1", "y1", "x2", "y2")],
        axis=1,
    ).astype(np.float32, copy=False)
    scores = struct.field("score").to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    # Labels and class labels share one table: their ids index it.
    n = len(struct)
    both = pc.dictionary_encode(
        pa.concat_arrays([struct.field("label"), struct.field("class_label")])
    )
    table = tuple(both.dictionary.to_pylist())
    ids = both.indices.fill_null(-1).to_numpy().astype(ID, copy=False)
    label_ids, class_ids = ids[:n], ids[n:]
    class_scores = (
        struct.field("class_score").to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    )
    texts_column = struct.field("text")
    polygons = struct.field("polygon")
    point_offsets = polygons.offsets.to_numpy() // 2
    points = polygons.values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, 2)
    errors = records.column("error").to_pylist()
    widths = records.column("width").to_pylist()
    heights = records.column("height").to_pylist()
    texts = records.column("text").to_pylist()
    tensors = records.column("tensors")
    found: list[Prediction | None] = []
    for i, (a, b) in enumerate(itertools.pairwise(offsets.tolist())):
        if errors[i] is not None:
            found.append(None)
            continue
        has_classes = bool((class_ids[a:b] >= 0).any() or (~np.isnan(class_scores[a:b])).any())
        has_texts = texts_column.slice(a, b - a).null_count < b - a
        poly = point_offsets[a : b + 1]
        has_polygons = b > a and poly[-1] > poly[0]
        found.append(
            Prediction.from_arrays(
                boxes[a:b],
                scores[a:b],
                label_ids[a:b],
                table,
                width=widths[i] or 0,
                height=heights[i] or 0,
                polygon_offsets=poly - poly[0] if has_polygons else None,
                polygon_points=points[poly[0] : poly[-1]] if has_polygons else None,
                texts=texts_column.slice(a, b - a).to_pylist() if has_texts else None,
                class_ids=class_ids[a:b] if has_classes else None,
                class_scores=class_scores[a:b] if has_classes else None,
                text=texts[i],
                tensors={
                    t["name"]: np.asarray(t["values"], np.float32).reshape(t["shape"])
                    for t in tensors[i].as_py() or ()
                },
            )
        )
    return found


def _one_batch(prediction: Prediction) -> pa.RecordBatch:
    """A record batch of ``RESULT_SCHEMA`` holding ``prediction`` alone (for examples)."""
    columns = prediction_columns([prediction])
    others = {
        "index": pa.array([0], pa.int64()),
        "source": pa.array(["example.jpg"]),
        "frame": pa.nulls(1, pa.int64()),
        "error": pa.nulls(1, pa.string()),
        "node": pa.array(["here"]),
    }
    return pa.RecordBatch.from_arrays(
        [columns.get(name, others.get(name)) for name in RESULT_SCHEMA.names],
        schema=RESULT_SCHEMA,
    )
