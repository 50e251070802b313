"""``Annotation``: one detected object, class, region or text line, as one object.

A ``Prediction`` keeps its boxes as columns; ``Annotation`` is the per-box view the
Geti-style API returns (``prediction.annotations``) and accepts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Annotation:
    """One detected object, class, region, or text line.

    ``box`` is ``(x1, y1, x2, y2)`` in source-image pixels. ``polygon`` is a flat
    sequence ``x0, y0, x1, y1, ...`` (also in source pixels; empty means none). A
    chained classifier adds ``class_label`` and ``class_score`` for the crop of
    this box.

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
        if self.polygon is not None and len(self.polygon) == 0:
            object.__setattr__(self, "polygon", None)  # an empty polygon is no polygon
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
