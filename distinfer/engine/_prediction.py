"""Typed inference results: ``Prediction`` (columns of arrays), ``Annotation``, their Arrow schema.

A ``Prediction`` holds its boxes as columns, as supervision's ``Detections`` does:
``boxes`` (N x 4 float32, ``x1, y1, x2, y2`` in source pixels), ``scores``,
``label_ids`` into one ``labels`` table, polygons as ``polygon_offsets`` into
``polygon_points``, per-box ``texts``, and a chained classifier's ``class_ids``
and ``class_scores``. Tasks build it with ``Prediction.from_arrays``; rows and
drawings read the columns. ``annotations``, one ``Annotation`` object per box,
is built from them on first use, for the Geti-style API.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import ArrayLike

from ._annotation import Annotation
from ._columns import checked_columns, columns_of

ANNOTATION_TYPE = pa.struct(
    [
        ("label", pa.string()),
        ("score", pa.float32()),
        ("x1", pa.float32()),
        ("y1", pa.float32()),
        ("x2", pa.float32()),
        ("y2", pa.float32()),
        ("text", pa.string()),
        ("class_label", pa.string()),
        ("class_score", pa.float32()),
        ("polygon", pa.list_(pa.float32())),
    ]
)
TENSOR_TYPE = pa.struct(
    [("name", pa.string()), ("shape", pa.list_(pa.int64())), ("values", pa.list_(pa.float32()))]
)

#: The columns a distributed run writes to Parquet, one row per image or video frame.
RESULT_SCHEMA = pa.schema(
    [
        ("index", pa.int64()),
        ("source", pa.string()),
        ("frame", pa.int64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("predictions", pa.list_(ANNOTATION_TYPE)),
        ("text", pa.string()),
        ("tensors", pa.list_(TENSOR_TYPE)),
        ("error", pa.string()),
        ("node", pa.string()),
    ]
)


@dataclass(frozen=True, eq=False, init=False, repr=False)
class Prediction:
    """Everything a model said about one image, as columns of arrays (one row per box).

    ``boxes`` is ``N x 4`` float32 ``x1, y1, x2, y2`` in source pixels; ``scores``
    float32; ``label_ids`` int32 indices into ``labels``. The polygon of box ``i``
    is ``polygon_points[polygon_offsets[i]:polygon_offsets[i + 1]]`` (``x, y``
    rows; none when that is empty); ``texts`` has a string (or None) per box. A
    chained classifier's label of box ``i`` is ``labels[class_ids[i]]`` (-1: none)
    with score ``class_scores[i]`` (NaN: none). Optional columns are None when no
    box has them. ``text`` is set by OCR models: the recognised lines in reading
    order, joined by newlines; ``tensors`` by the ``raw`` task: the output tensors
    by name.

    Build one from arrays with ``from_arrays`` (validated, nothing copied), or, as
    the Geti SDK does, from ``Annotation`` objects; ``annotations`` gives one per
    box either way (built on first use).

    >>> p = Prediction([Annotation("cat", 0.9, (1, 2, 30, 40))], width=64, height=48)
    >>> p.boxes.tolist(), p.labels
    ([[1.0, 2.0, 30.0, 40.0]], ('cat',))
    >>> q = Prediction.from_arrays([[1, 2, 30, 40]], [0.9], [0], ["cat"], width=64, height=48)
    >>> q.annotations[0].label, q == p
    ('cat', True)
    """

    width: int
    height: int
    text: str | None
    tensors: Mapping[str, np.ndarray]
    boxes: np.ndarray
    scores: np.ndarray
    label_ids: np.ndarray
    labels: tuple[str, ...]
    polygon_offsets: np.ndarray | None
    polygon_points: np.ndarray | None
    texts: tuple[str | None, ...] | None
    class_ids: np.ndarray | None
    class_scores: np.ndarray | None

    def __init__(
        self,
        annotations: Sequence[Annotation] = (),
        width: int = 0,
        height: int = 0,
        text: str | None = None,
        tensors: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        given = tuple(annotations)
        for a in given:
            if not isinstance(a, Annotation):
                raise TypeError(f"annotations must be Annotation objects, got {type(a).__name__}")
        self._fill(width, height, text, tensors, columns_of(given))
        object.__setattr__(self, "_annotations", given)

    @classmethod
    def from_arrays(
        cls,
        boxes: ArrayLike,
        scores: ArrayLike,
        label_ids: ArrayLike,
        labels: Sequence[str],
        *,
        width: int,
        height: int,
        polygon_offsets: ArrayLike | None = None,
        polygon_points: ArrayLike | None = None,
        texts: Sequence[str | None] | None = None,
        class_ids: ArrayLike | None = None,
        class_scores: ArrayLike | None = None,
        text: str | None = None,
        tensors: Mapping[str, np.ndarray] | None = None,
    ) -> Prediction:
        """A prediction from its columns; raises ``ValueError`` saying what was expected."""
        columns = checked_columns(
            boxes,
            scores,
            label_ids,
            labels,
            polygon_offsets,
            polygon_points,
            texts,
            class_ids,
            class_scores,
        )
        prediction = cls.__new__(cls)
        prediction._fill(width, height, text, tensors, columns)
        object.__setattr__(prediction, "_annotations", None)
        return prediction

    def _fill(
        self,
        width: int,
        height: int,
        text: str | None,
        tensors: Mapping[str, np.ndarray] | None,
        columns: dict[str, Any],
    ) -> None:
        if width < 0 or height < 0:
            raise ValueError(f"width and height must be >= 0, got {width}x{height}")
        for name, value in (
            ("width", width),
            ("height", height),
            ("text", text),
            ("tensors", {} if tensors is None else tensors),
            *columns.items(),
        ):
            object.__setattr__(self, name, value)

    @classmethod
    def empty(cls, width: int = 0, height: int = 0) -> Prediction:
        return cls((), width, height)

    @property
    def annotations(self) -> tuple[Annotation, ...]:
        """One ``Annotation`` per box, in order (built from the columns on first use)."""
        found: tuple[Annotation, ...] | None = self.__dict__["_annotations"]
        if found is None:
            found = tuple(
                Annotation(label, score, box, polygon, text, class_label, class_score)
                for label, score, box, polygon, text, class_label, class_score in zip(
                    *self._per_box(), strict=True
                )
            )
            object.__setattr__(self, "_annotations", found)
        return found

    def _per_box(self) -> tuple[list[Any], ...]:
        """The columns as Python lists, one entry per box (for annotations and ``==``)."""
        n = len(self.boxes)
        labels = self.labels
        polygons: list[Any] = [None] * n
        if self.polygon_offsets is not None and self.polygon_points is not None:
            flat, bounds = self.polygon_points.reshape(-1).tolist(), self.polygon_offsets.tolist()
            polygons = [tuple(flat[2 * a : 2 * b]) or None for a, b in itertools.pairwise(bounds)]
        class_labels: list[Any] = [None] * n
        if self.class_ids is not None:
            class_labels = [labels[i] if i >= 0 else None for i in self.class_ids.tolist()]
        class_scores: list[Any] = [None] * n
        if self.class_scores is not None:
            class_scores = [None if math.isnan(s) else s for s in self.class_scores.tolist()]
        return (
            [labels[i] for i in self.label_ids.tolist()],
            self.scores.tolist(),
            [tuple(box) for box in self.boxes.tolist()],
            polygons,
            list(self.texts) if self.texts is not None else [None] * n,
            class_labels,
            class_scores,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Prediction):
            return NotImplemented
        return (
            (self.width, self.height, self.text) == (other.width, other.height, other.text)
            and self._per_box() == other._per_box()
            and self.tensors.keys() == other.tensors.keys()
            and all(np.array_equal(v, other.tensors[k]) for k, v in self.tensors.items())
        )

    __hash__ = None  # type: ignore[assignment]  # equal predictions may hold different arrays

    def __repr__(self) -> str:
        extra = f", tensors={sorted(self.tensors)}" if self.tensors else ""
        return (
            f"Prediction({len(self.boxes)} boxes, labels={self.labels!r}, width={self.width}, "
            f"height={self.height}, text={self.text!r}{extra})"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict; tensors become nested lists."""
        return {
            "width": self.width,
            "height": self.height,
            "text": self.text,
            "annotations": [a.to_dict() for a in self.annotations],
            "tensors": {k: np.asarray(v).tolist() for k, v in self.tensors.items()},
        }

    def to_row(self) -> dict[str, Any]:
        """The prediction columns of ``RESULT_SCHEMA`` (without index, source, ...).

        Result rows are built from the columns directly (``ResultBatch.from_items``);
        this is the same row as plain Python objects.
        """
        return {
            "width": self.width,
            "height": self.height,
            "predictions": [a.to_dict() for a in self.annotations],
            "text": self.text,
            "tensors": [
                {
                    "name": name,
                    "shape": list(np.shape(value)),
                    "values": np.asarray(value, dtype=np.float32).ravel(),
                }
                for name, value in self.tensors.items()
            ],
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Prediction:
        """Rebuild a prediction from one row of ``RESULT_SCHEMA`` (``to_pylist`` form)."""
        tensors = {
            t["name"]: np.asarray(t["values"], dtype=np.float32).reshape(t["shape"])
            for t in row.get("tensors") or ()
        }
        return cls(
            annotations=[Annotation.from_dict(a) for a in row.get("predictions") or ()],
            width=row.get("width") or 0,
            height=row.get("height") or 0,
            text=row.get("text"),
            tensors=tensors,
        )
