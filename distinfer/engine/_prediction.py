"""Typed inference results: ``Annotation`` and ``Prediction``, and their Arrow schema."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

Box = tuple[float, float, float, float]

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


@dataclass(frozen=True)
class Annotation:
    """One detected object, class, region, or text line.

    ``box`` is ``(x1, y1, x2, y2)`` in source-image pixels. ``polygon`` is a flat
    sequence ``x0, y0, x1, y1, ...`` (also in source pixels). A chained classifier
    adds ``class_label`` and ``class_score`` for the crop of this box.

    >>> Annotation("cat", 0.9, (1, 2, 30, 40)).box
    (1.0, 2.0, 30.0, 40.0)
    """

    label: str
    score: float
    box: Box
    polygon: tuple[float, ...] | None = None
    text: str | None = None
    class_label: str | None = None
    class_score: float | None = None

    def __post_init__(self) -> None:
        if len(self.box) != 4:
            raise ValueError(f"box must have 4 values (x1, y1, x2, y2), got {len(self.box)}")
        box = tuple(float(v) for v in self.box)
        if not all(math.isfinite(v) for v in box) or box[2] < box[0] or box[3] < box[1]:
            raise ValueError(f"box must be finite with x1 <= x2 and y1 <= y2, got {box}")
        if not 0.0 <= float(self.score) <= 1.0 + 1e-6:
            raise ValueError(f"score must be within [0, 1], got {self.score}")
        object.__setattr__(self, "box", box)
        object.__setattr__(self, "score", float(self.score))
        if self.polygon is not None:
            if len(self.polygon) % 2:
                raise ValueError(f"polygon needs x, y pairs, got {len(self.polygon)} values")
            object.__setattr__(self, "polygon", tuple(float(v) for v in self.polygon))
        if self.class_score is not None:
            object.__setattr__(self, "class_score", float(self.class_score))

    def to_dict(self) -> dict[str, Any]:
        x1, y1, x2, y2 = self.box
        return {
            "label": self.label,
            "score": self.score,
            "x1": x1,
            "y1": y1,
            "x2": x2,
            "y2": y2,
            "text": self.text,
            "class_label": self.class_label,
            "class_score": self.class_score,
            "polygon": list(self.polygon) if self.polygon is not None else None,
        }

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> Annotation:
        polygon = row.get("polygon")
        return cls(
            label=row["label"],
            score=row["score"],
            box=(row["x1"], row["y1"], row["x2"], row["y2"]),
            polygon=tuple(polygon) if polygon is not None else None,
            text=row.get("text"),
            class_label=row.get("class_label"),
            class_score=row.get("class_score"),
        )


@dataclass(frozen=True)
class Prediction:
    """Everything a model said about one image.

    ``text`` is set by OCR models: the recognised lines in reading order, joined
    by newlines. ``tensors`` is set by the ``raw`` task: the output tensors by name.

    >>> p = Prediction([Annotation("cat", 0.9, (1, 2, 30, 40))], width=64, height=48)
    >>> p.to_dict()["annotations"][0]["label"]
    'cat'
    """

    annotations: Sequence[Annotation] = ()
    width: int = 0
    height: int = 0
    text: str | None = None
    tensors: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "annotations", tuple(self.annotations))
        for a in self.annotations:
            if not isinstance(a, Annotation):
                raise TypeError(f"annotations must be Annotation objects, got {type(a).__name__}")
        if self.width < 0 or self.height < 0:
            raise ValueError(f"width and height must be >= 0, got {self.width}x{self.height}")

    @classmethod
    def empty(cls, width: int = 0, height: int = 0) -> Prediction:
        return cls((), width, height)

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
        """The prediction columns of ``RESULT_SCHEMA`` (without index, source, ...)."""
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
