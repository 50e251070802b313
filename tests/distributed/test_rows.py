"""Result rows built from the predictions' columns equal the rows built the old way
(a dict per box, ``RecordBatch.from_pylist``), and read back as the same predictions."""

from __future__ import annotations

import numpy as np
import pytest

from distinfer import Annotation, Prediction
from distinfer.distributed._rows import ItemResult, ResultBatch, error_row, result_row
from distinfer.engine._arrow import predictions_from_records


def ocr_line(i: int) -> Annotation:
    x = 10.0 + 3.25 * i
    return Annotation(
        "text",
        0.9 - i / 1000,
        (x, 20.5, x + 100.0, 40.125),
        polygon=(x, 20.5, x + 100, 20.5, x + 100, 40.125, x, 40.125),
        text=f"Grüße {i}, 世界" if i % 3 else "",
        class_label="180" if i % 2 else "0",
        class_score=0.5 + i / 200,
    )


def detection(i: int) -> Annotation:
    label = ("cat", "dog", "bird")[i % 3]
    return Annotation(label, (i % 10) / 10, (i, i, i + 5.5, i + 7), class_label=None)


EMPTY = Prediction((), 640, 480, text="")
ONE = Prediction([Annotation("car", 0.5, (1, 2, 3, 4))], 64, 48)
MANY = Prediction([ocr_line(i) for i in range(40)], 1280, 960, text="a\nb")
MIXED = Prediction(
    [detection(i) for i in range(7)]
    + [Annotation("cat", 0.1, (0, 0, 9, 9), polygon=(0, 0, 9, 0, 9, 9))]
    + [Annotation("dog", 0.2, (1, 1, 2, 2), class_label="red")]
    + [Annotation("dog", 0.3, (1, 1, 2, 2), class_score=0.25)],
    300,
    200,
)
RAW = Prediction(width=16, height=8, tensors={"pixels": np.arange(24.0).reshape(1, 2, 3, 4)})


def from_arrays(p: Prediction) -> Prediction:
    """The same prediction, built from its columns as a task builds it."""
    return Prediction.from_arrays(
        p.boxes,
        p.scores,
        p.label_ids,
        p.labels,
        width=p.width,
        height=p.height,
        polygon_offsets=p.polygon_offsets,
        polygon_points=p.polygon_points,
        texts=p.texts,
        class_ids=p.class_ids,
        class_scores=p.class_scores,
        text=p.text,
        tensors=p.tensors,
    )


def both_ways(predictions: list[Prediction | str]) -> tuple[ResultBatch, ResultBatch]:
    """``(from the columns, the old way)``; a string is an error row."""
    items, rows = [], []
    for i, p in enumerate(predictions):
        index, source, frame = 100 + i, f"dir/{i}.jpg", (i if i % 2 else None)
        if isinstance(p, str):
            items.append(ItemResult(index, source, frame, "n0", error=p))
            rows.append(error_row(index, source, frame, p, "n0"))
        else:
            items.append(ItemResult(index, source, frame, "n0", from_arrays(p)))
            rows.append(result_row(index, source, frame, p, "n0"))
    return ResultBatch.from_items(items[::-1]), ResultBatch.from_rows(rows)


@pytest.mark.parametrize(
    "predictions",
    [
        [EMPTY],
        [ONE],
        [MANY],
        [MIXED],
        [RAW],
        [ONE, "truncated JPEG", EMPTY, MANY, MIXED, "", RAW, ONE],
        ["bad", "worse"],
    ],
    ids=["empty", "single-box", "many-boxes", "mixed-columns", "tensors", "unit", "errors"],
)
def test_rows_from_columns_equal_rows_built_the_old_way(
    predictions: list[Prediction | str],
) -> None:
    columnar, old = both_ways(predictions)

    assert columnar.records.schema.equals(old.records.schema)
    assert columnar.records.equals(old.records)
    assert columnar.to_pylist() == old.to_pylist()
    assert (columnar.first, columnar.end) == (100, 100 + len(predictions))


def test_rows_read_back_as_the_same_predictions_after_ipc_and_slicing() -> None:
    predictions: list[Prediction | str] = [MANY, "bad", ONE, EMPTY, MIXED, RAW]
    columnar, _ = both_ways(predictions)
    import pickle

    batch = pickle.loads(pickle.dumps(columnar))
    found = predictions_from_records(batch.records)
    assert found == [None if isinstance(p, str) else p for p in predictions]
    assert predictions_from_records(batch.since(102).records) == [ONE, EMPTY, MIXED, RAW]


def test_an_item_is_a_prediction_or_an_error() -> None:
    with pytest.raises(ValueError, match="item 3: expected a prediction or an error, got both"):
        ItemResult(3, "a.jpg", None, "n", ONE, "bad")
    with pytest.raises(ValueError, match="got neither"):
        ItemResult(3, "a.jpg", None, "n")
