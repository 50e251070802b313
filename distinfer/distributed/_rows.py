"""Result rows on their way to the collector: one Arrow record batch per unit of work.

Every unit covers a contiguous index range: consecutive images, a run of
frames of one video, a single item split off a failing unit, or the error rows
the driver writes for such a unit. Its rows therefore travel as one
``ResultBatch``, a record batch of ``RESULT_SCHEMA`` whose index column is
``first, first + 1, ..., end - 1``; the collector reorders whole batches by
``first`` and never looks at a row on its own.

An inference actor builds a unit's batch from ``ItemResult``s with
``ResultBatch.from_items``: the columns of the predictions go into Arrow arrays
as they are (``engine._arrow``), without a Python object per box. ``from_rows``
takes rows as plain dicts (``result_row``, ``error_row``), for tests and tools.

Between processes a batch travels as an Arrow IPC message without its schema
(both ends know ``RESULT_SCHEMA``): pickling the record batch itself rebuilds
the nested schema from Python objects on every call, which costs more than the
rows of a small unit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Any

import numpy as np
import pyarrow as pa

from .._errors import InputError
from ..engine._arrow import prediction_columns
from ..engine._prediction import RESULT_SCHEMA, Prediction


def describe(exc: BaseException) -> str:
    """A one-line error for a row: our own messages as they are, others with their type."""
    if isinstance(exc, InputError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def error_row(index: int, source: str, frame: int | None, error: str, node: str) -> dict[str, Any]:
    """The row of an item that failed: ``error`` set, no predictions."""
    return {
        "index": index,
        "source": source,
        "frame": frame,
        "width": None,
        "height": None,
        "predictions": [],
        "text": None,
        "tensors": [],
        "error": error,
        "node": node,
    }


def result_row(
    index: int, source: str, frame: int | None, prediction: Prediction, node: str
) -> dict[str, Any]:
    """The row of an item that succeeded."""
    return {
        "index": index,
        "source": source,
        "frame": frame,
        **prediction.to_row(),
        "error": None,
        "node": node,
    }


@dataclass(frozen=True)
class ItemResult:
    """One item's outcome on its way into a ``ResultBatch``: a prediction or an error.

    >>> ItemResult(3, "a.jpg", None, "node-1", error="truncated JPEG").failed
    True
    """

    index: int
    source: str
    frame: int | None
    node: str
    prediction: Prediction | None = None
    error: str | None = None

    def __post_init__(self) -> None:
        if (self.prediction is None) == (self.error is None):
            raise ValueError(
                f"item {self.index}: expected a prediction or an error, "
                f"got {'both' if self.error is not None else 'neither'}"
            )

    @property
    def failed(self) -> bool:
        return self.error is not None


def index_range(rows: pa.RecordBatch | pa.Table) -> tuple[int, int]:
    """``(first, end)`` of rows whose indices are ``first .. end - 1`` in order.

    Raises ``ValueError`` for no rows, a missing index, or indices that are not
    consecutive: every unit of work covers a contiguous range, so such rows mean
    a bug upstream, and taking them would misplace results.

    >>> index_range(pa.table({"index": [7, 8, 9]}))
    (7, 10)
    """
    n = rows.num_rows
    if n == 0:
        raise ValueError("result rows: expected at least one row, got none")
    column = rows.column("index")
    if column.null_count:
        raise ValueError(
            f"result rows: expected an index on every row, {column.null_count} lack one"
        )
    indices = column.to_numpy()
    first = int(indices[0])
    if n > 1 and not (int(indices[-1]) == first + n - 1 and bool((np.diff(indices) == 1).all())):
        shown = ", ".join(map(str, indices[:8])) + (", ..." if n > 8 else "")
        raise ValueError(
            f"result rows: expected consecutive indices {first}..{first + n - 1}, got [{shown}]"
        )
    return first, first + n


@dataclass(frozen=True, eq=False)
class ResultBatch:
    """The rows of one unit, indices ``first .. end - 1``, as a record batch of ``RESULT_SCHEMA``.

    Validated at construction, which also runs when a batch arrives in another
    process: a collector never holds rows out of range.

    >>> batch = ResultBatch.from_rows([error_row(i, "a.jpg", None, "bad", "n") for i in (4, 3)])
    >>> batch.first, batch.end, len(batch)
    (3, 5, 2)
    >>> len(batch.since(4)), batch.since(4).first
    (1, 4)
    """

    records: pa.RecordBatch
    first: int = field(init=False)
    end: int = field(init=False)

    def __post_init__(self) -> None:
        if not self.records.schema.equals(RESULT_SCHEMA):
            raise ValueError(
                f"result rows: expected RESULT_SCHEMA {RESULT_SCHEMA.names}, "
                f"got {self.records.schema.names}"
            )
        first, end = index_range(self.records)
        object.__setattr__(self, "first", first)
        object.__setattr__(self, "end", end)

    @classmethod
    def from_items(cls, items: Sequence[ItemResult]) -> ResultBatch:
        """The rows of these items, in any order, built from the predictions' columns."""
        ordered = sorted(items, key=attrgetter("index"))
        columns = prediction_columns([item.prediction for item in ordered])
        columns.update(
            index=pa.array([item.index for item in ordered], pa.int64()),
            source=pa.array([item.source for item in ordered], pa.string()),
            frame=pa.array([item.frame for item in ordered], pa.int64()),
            error=pa.array([item.error for item in ordered], pa.string()),
            node=pa.array([item.node for item in ordered], pa.string()),
        )
        arrays = [columns[name] for name in RESULT_SCHEMA.names]
        return cls(pa.RecordBatch.from_arrays(arrays, schema=RESULT_SCHEMA))

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]]) -> ResultBatch:
        """Rows as ``error_row``/``result_row`` make them (plain dicts), in any order."""
        ordered = sorted(rows, key=itemgetter("index"))
        return cls(pa.RecordBatch.from_pylist(ordered, schema=RESULT_SCHEMA))

    def __len__(self) -> int:
        return self.end - self.first

    def since(self, index: int) -> ResultBatch:
        """The rows from ``index`` on (``first <= index < end``); no copy."""
        if not self.first <= index < self.end:
            raise ValueError(f"index {index} is outside this batch ({self.first}..{self.end - 1})")
        return ResultBatch(self.records.slice(index - self.first))

    def errors(self) -> list[str]:
        """The error messages of the failed rows, in index order."""
        return [e for e in self.records.column("error").to_pylist() if e]

    def to_pylist(self) -> list[dict[str, Any]]:
        return self.records.to_pylist()  # type: ignore[no-any-return]

    def __reduce__(self) -> tuple[Any, tuple[pa.Buffer]]:
        return from_message, (self.records.serialize(),)


def from_message(message: pa.Buffer) -> ResultBatch:
    return ResultBatch(pa.ipc.read_record_batch(message, RESULT_SCHEMA))
