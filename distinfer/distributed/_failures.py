"""What the dispatcher does with failures and deliveries: the pieces it keeps apart from
its loop (``_dispatch``).

- A unit that fails is retried; after ``MAX_ATTEMPTS`` it is split into single
  items, and an item that still fails becomes error rows made here.
- A failure that is not the unit's fault (the store gone past its retries, an
  output that cannot be written) stops the run instead, resumably.
- Every delivery to the collector is remembered until it is committed, so that
  a collector restart can be answered by delivering it again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .._errors import DistinferError, OutputError, StorageUnavailableError
from ._rows import ResultBatch, error_row
from ._work import ImageUnit, WorkUnit

#: A unit that failed this many times is split into single items; a single item
#: (or a video segment) that fails this many times becomes error rows.
MAX_ATTEMPTS = 2


@dataclass
class Delivery:
    """Rows the collector took and may not have committed yet.

    ``unit`` is processed again to redeliver; ``rows`` (error rows made by the
    driver) are sent again as they are.
    """

    first_index: int
    end_index: int
    items: int
    errors: int
    unit: WorkUnit | None = None
    rows: ResultBatch | None = None


def split(unit: WorkUnit, unit_ids: Iterator[int]) -> list[WorkUnit]:
    if isinstance(unit, ImageUnit) and len(unit) > 1:
        return [ImageUnit(next(unit_ids), (item,)) for item in unit.items]
    return []


def failed_rows(unit: WorkUnit, reason: str) -> ResultBatch:
    """Error rows for every index of ``unit``: its range, like the rows of an actor."""
    if isinstance(unit, ImageUnit):
        rows = [error_row(i, ref.source, None, reason, "driver") for i, ref in unit.items]
    else:
        rows = [
            error_row(unit.base_index + n, unit.source, n, reason, "driver")
            for n in range(unit.segment.start_frame, unit.segment.end_frame)
        ]
    return ResultBatch.from_rows(rows)


def stops_the_run(exc: Any, ray_task_error: Any) -> DistinferError | None:
    """The store that stayed away past its retries (``StorageUnavailableError``), or an
    output that cannot be written (``OutputError``: the collector's, passed on by the
    actor), inside an actor: the run stops, resumably, instead of retrying the unit."""
    cause: Any = exc.cause
    while isinstance(cause, ray_task_error) and getattr(cause, "cause", None) is not None:
        cause = cause.cause
    return cause if isinstance(cause, StorageUnavailableError | OutputError) else None
