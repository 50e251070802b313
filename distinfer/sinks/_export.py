"""Exports of a results folder: COCO detection JSON, JSON Lines, CSV (``distinfer export``).

Every format reads the folder in index order, one record batch at a time
(``ResultsFolder.batches``), and writes as it goes: memory stays bounded
however many rows the run has. The output appears whole or not at all: it is
written under a temporary name beside ``output`` and renamed into place.

Nothing is dropped: failed items are rows with ``error`` set in JSON Lines
and CSV, and are listed under ``errors`` in COCO. Floats are written in the
fewest digits that give back the stored float32 value. Not exported: the
``tensors`` of the ``raw`` task and the ``node`` column (read the Parquet
folder for those).

>>> summary = export_results("out/results", "coco", "out/coco.json")  # doctest: +SKIP
>>> summary.items, summary.errors, summary.detections                 # doctest: +SKIP
(24, 1, 312)
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from .._errors import ConfigError, OutputError
from ..engine._prediction import RESULT_SCHEMA
from ..storage import Location
from ._coco import COCO_COLUMNS, write_coco
from ._reader import ResultsFolder, decimal_floats, open_results

FORMATS = ("coco", "jsonl", "csv")
#: The result columns exported (all but ``tensors`` and ``node``).
EXPORT_COLUMNS = COCO_COLUMNS
_EXPORT_SCHEMA = pa.schema([RESULT_SCHEMA.field(name) for name in EXPORT_COLUMNS])
#: Failed items named in an ``ExportSummary`` (the CLI prints them).
ERROR_SAMPLES = 5


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote: items (rows), of which failed, and detections (annotations)."""

    path: Path
    format: str
    items: int
    errors: int
    detections: int
    #: False when an unfinished run was exported (``partial=True``): a prefix of the job.
    finished: bool
    #: ``(index, source, error)`` of the first failed items.
    error_samples: tuple[tuple[int, str, str], ...] = ()


def export_results(
    results: str | Path | Location,
    format: str,
    output: str | Path,
    *,
    partial: bool = False,
    categories: Sequence[str] = (),
) -> ExportSummary:
    """Write the results folder ``results`` to the file ``output`` as ``format``
    (``coco``, ``jsonl`` or ``csv``).

    An unfinished run is refused unless ``partial`` (then its committed rows are
    written). ``categories`` fixes the first COCO category ids (1, 2, ...); other
    labels follow in the order they first appear.

    Raises ``ConfigError`` before anything is written (unknown format, not a
    results folder, an unfinished run, an output that is a folder) and
    ``OutputError`` when reading or writing fails; ``output`` is then untouched.
    """
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if categories and format != "coco":
        raise ConfigError("categories apply to the coco format only")
    output = Path(output)
    if output.is_dir():
        raise ConfigError(f"{output} is a folder; give the path of the file to write")
    folder = open_results(results, partial=partial)
    where = folder.location
    if where.is_local and Path(where.path).resolve() in output.resolve().parents:
        raise ConfigError(
            f"{output} is inside the results folder {where.uri}, which a rerun with "
            "--overwrite empties; write the export somewhere else"
        )
    counter = _Counter()
    rows = counter.count(folder.batches(EXPORT_COLUMNS))
    try:
        with _replace_atomically(output) as out:
            if format == "coco":
                info = _coco_info(folder)
                write_coco(rows, out, categories=categories, info=info, scratch_dir=output.parent)
            elif format == "jsonl":
                write_jsonl(rows, out)
            else:
                write_csv(rows, out)
    except OSError as exc:
        raise OutputError(f"cannot write {output}: {exc.strerror or exc}") from exc
    except ValueError as exc:  # json: a value JSON cannot hold (NaN, infinity)
        raise OutputError(f"cannot write {output}: {exc}") from exc
    return ExportSummary(
        output,
        format,
        counter.items,
        counter.errors,
        counter.detections,
        folder.finished,
        tuple(counter.samples),
    )


def write_jsonl(batches: Iterable[pa.RecordBatch], out: IO[bytes]) -> None:
    """One JSON object per row (``EXPORT_COLUMNS``, ``predictions`` a list of objects)."""
    for batch in batches:
        lines = [
            json.dumps(row, ensure_ascii=False, allow_nan=False)
            for row in decimal_floats(batch.select(EXPORT_COLUMNS)).to_pylist()
        ]
        if lines:
            out.write(("\n".join(lines) + "\n").encode())


#: CSV columns: the item, then one detection's fields (empty on a row without one).
CSV_COLUMNS = (
    "index",
    "source",
    "frame",
    "width",
    "height",
    "label",
    "score",
    "x1",
    "y1",
    "x2",
    "y2",
    "text",
    "class_label",
    "class_score",
    "polygon",
    "error",
)


def write_csv(batches: Iterable[pa.RecordBatch], out: IO[bytes]) -> None:
    """One CSV row per detection, and one per item without any (failed ones included).

    ``text`` is the detection's (an OCR line); ``polygon`` is ``x0 y0 x1 y1 ...``.
    """
    writer: pa_csv.CSVWriter | None = None
    for batch in batches:
        table = _detection_rows(batch)
        if writer is None:
            writer = pa_csv.CSVWriter(out, table.schema)
        writer.write_table(table)
    if writer is None:  # no rows: still a header
        empty = pa.RecordBatch.from_pylist([], schema=_EXPORT_SCHEMA)
        writer = pa_csv.CSVWriter(out, _detection_rows(empty).schema)
    writer.close()


def _detection_rows(batch: pa.RecordBatch) -> pa.Table:
    """The rows of ``batch`` spread to one per detection (one for an item without any)."""
    predictions = batch.column("predictions")
    counts = pc.fill_null(pc.list_value_length(predictions), 0).to_numpy(zero_copy_only=False)
    per_item = np.maximum(counts, 1)
    item = np.repeat(np.arange(len(counts)), per_item)
    # Position of each CSV row's detection among the batch's detections; -1: none.
    starts = np.cumsum(counts) - counts
    within = np.arange(len(item)) - np.repeat(np.cumsum(per_item) - per_item, per_item)
    has = counts[item] > 0
    detection = pa.array(np.where(has, starts[item] + within, 0), mask=~has)
    found = pc.list_flatten(predictions).take(detection)
    items = batch.take(pa.array(item))
    columns: dict[str, pa.Array] = {
        name: items.column(name) for name in ("index", "source", "frame", "width", "height")
    }
    for name in ("label", "score", "x1", "y1", "x2", "y2", "text", "class_label", "class_score"):
        columns[name] = pc.struct_field(found, name)
    polygon = pc.struct_field(found, "polygon")
    columns["polygon"] = pc.binary_join(polygon.cast(pa.list_(pa.string())), " ")
    columns["error"] = items.column("error")
    return pa.table({name: columns[name] for name in CSV_COLUMNS})


def _coco_info(folder: ResultsFolder) -> dict[str, object]:
    # Imported here: importlib.metadata costs 15 ms, and every collector imports sinks.
    from importlib.metadata import PackageNotFoundError, version

    try:
        distinfer = version("distinfer")
    except PackageNotFoundError:  # running from a source tree
        distinfer = "unknown"
    return {
        "description": "distinfer results",
        "distinfer_version": distinfer,
        "complete": folder.finished,
    }


class _Counter:
    """Counts what goes through: items, failed items (with samples), detections."""

    def __init__(self) -> None:
        self.items = self.errors = self.detections = 0
        self.samples: list[tuple[int, str, str]] = []

    def count(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            self.items += batch.num_rows
            lengths = pc.list_value_length(batch.column("predictions"))
            self.detections += pc.sum(lengths).as_py() or 0
            # an error row is one with a non-empty message, as the manifest counts them
            failed = pc.fill_null(pc.greater(pc.utf8_length(batch.column("error")), 0), False)
            self.errors += pc.sum(failed).as_py() or 0
            if len(self.samples) < ERROR_SAMPLES and self.errors:
                for row in batch.filter(failed).select(["index", "source", "error"]).to_pylist():
                    if len(self.samples) < ERROR_SAMPLES:
                        self.samples.append((row["index"], row["source"], row["error"]))
            yield batch


@contextmanager
def _replace_atomically(path: Path) -> Iterator[IO[bytes]]:
    """A file written beside ``path`` and renamed to it on success, deleted on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
