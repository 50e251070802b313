"""Reading a results folder back, in index order, one record batch at a time.

Exports and other consumers go through ``open_results`` and
``ResultsFolder.batches`` only: the manifest and the Parquet parts are read
here and nowhere else on this path. A results folder is a local folder or a
prefix on object storage (``s3://bucket/results``), its parts read by ranged
reads. Memory is bounded by one part (its row group is
decoded whole, then handed out in slices of ``batch_rows``), whatever the
size of the run.

>>> results = open_results("out/results")                       # doctest: +SKIP
>>> for batch in results.batches(["index", "predictions"]):     # doctest: +SKIP
...     ...
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .._errors import ConfigError, OutputError, StorageError, StorageUnavailableError
from ..distributed._rows import index_range
from ..engine._prediction import RESULT_SCHEMA
from ..storage import Location
from ._parquet import MANIFEST, as_location, open_part, read_manifest

#: Rows per record batch handed out: big enough for vectorised work, small
#: enough that a batch converted to Python objects stays a few megabytes.
BATCH_ROWS = 1024


@dataclass(frozen=True)
class ResultsFolder:
    """A results folder whose manifest has been read and checked (see ``open_results``)."""

    location: Location
    manifest: Mapping[str, Any]

    @property
    def finished(self) -> bool:
        """False for a run still going, or one that stopped before its end."""
        return bool(self.manifest.get("finished"))

    @property
    def rows(self) -> int:
        """Committed rows: every index below this is in a listed part."""
        return int(self.manifest.get("committed_until", 0))

    @property
    def errors(self) -> int:
        """Committed rows whose ``error`` is set."""
        return int(self.manifest.get("errors", 0))

    def batches(
        self, columns: Sequence[str] | None = None, batch_rows: int = BATCH_ROWS
    ) -> Iterator[pa.RecordBatch]:
        """The committed rows in index order, ``columns`` of ``RESULT_SCHEMA`` (None: all).

        Raises ``OutputError`` when a part is missing, unreadable, or does not hold
        the indices the manifest says it does.
        """
        names = list(columns) if columns is not None else RESULT_SCHEMA.names
        unknown = sorted(set(names) - set(RESULT_SCHEMA.names))
        if unknown:
            raise ValueError(f"columns must be among {RESULT_SCHEMA.names}, got {unknown}")
        schema = pa.schema([RESULT_SCHEMA.field(name) for name in names])
        read_names = names if "index" in names else ["index", *names]
        expected = 0
        for part in self.manifest.get("parts", ()):
            path = self.location.join(part["file"])
            try:
                with open_part(path) as source, pq.ParquetFile(source) as parquet:
                    for batch in parquet.iter_batches(batch_size=batch_rows, columns=read_names):
                        first, end = index_range(batch)
                        if first != expected:
                            raise ValueError(f"expected index {expected} next, got {first}")
                        expected = end
                        yield _conform(batch.select(names), schema)
            except StorageUnavailableError:
                raise
            except (OSError, ValueError, pa.ArrowException, StorageError) as exc:
                raise OutputError(
                    f"cannot read {path} ({exc}); the results folder is damaged: "
                    "rerun the job with --overwrite"
                ) from exc
            if expected != part["last"] + 1:
                raise OutputError(
                    f"{path} ends at index {expected - 1}, the manifest says {part['last']}; "
                    "the results folder is damaged: rerun the job with --overwrite"
                )


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with exactly ``schema`` (parts written by this version already have it)."""
    if batch.schema.equals(schema):
        return batch
    return pa.RecordBatch.from_arrays(
        [batch.column(i).cast(f.type) for i, f in enumerate(schema)], schema=schema
    )


def open_results(folder: str | Path | Location, *, partial: bool = False) -> ResultsFolder:
    """Check that ``folder`` (a path or URI) holds a distinfer results folder and read
    its manifest.

    An unfinished run (still going, or stopped before its end) is refused
    unless ``partial``: its committed rows are only a prefix of the job.
    Raises ``ConfigError`` (a usage problem: nothing has been read yet).
    """
    location = as_location(folder)
    local = location.path.rstrip("/") or "/"
    if location.is_local and not os.path.isdir(local):
        what = "is not a folder" if os.path.exists(local) else "does not exist"
        raise ConfigError(
            f"{location.uri} {what}; give the output.parquet folder of a distinfer run"
        )
    try:
        manifest = read_manifest(location)
    except OutputError as exc:
        raise ConfigError(f"cannot read the results in {location.uri}: {exc}") from None
    if manifest is None:
        raise ConfigError(
            f"{location.uri} has no {MANIFEST}: not a distinfer results folder "
            "(give the output.parquet folder of a run)"
        )
    results = ResultsFolder(location, manifest)
    if not results.finished and not partial:
        raise ConfigError(
            f"{location.uri} holds an unfinished run ({results.rows} items committed so far): "
            "rerun the job to finish it, or export the committed items with --partial "
            "(partial=True)"
        )
    return results


def decimal_floats(batch: pa.RecordBatch) -> pa.RecordBatch:
    """``batch`` with every float32 value, nested ones included, as the float64 of its
    shortest decimal form: 0.9, not 0.8999999761581421, in JSON written from it.

    >>> batch = pa.record_batch({"score": pa.array([0.9], pa.float32())})
    >>> decimal_floats(batch).to_pylist()
    [{'score': 0.9}]
    """
    wide = pa.schema([f.with_type(_float32_to(f.type, pa.float64())) for f in batch.schema])
    if wide.equals(batch.schema):
        return batch
    # Arrow prints a float32 in the fewest digits that read back as the same float32.
    columns = [
        column.cast(_float32_to(column.type, pa.string())).cast(field.type)
        if field.type != column.type
        else column
        for column, field in zip(batch.columns, wide, strict=True)
    ]
    return pa.RecordBatch.from_arrays(columns, schema=wide)


def _float32_to(kind: pa.DataType, to: pa.DataType) -> pa.DataType:
    """``kind`` with float32 replaced by ``to`` at any depth (lists and structs)."""
    if kind == pa.float32():
        return to
    if pa.types.is_list(kind):
        return pa.list_(_float32_to(kind.value_type, to))
    if pa.types.is_struct(kind):
        return pa.struct([f.with_type(_float32_to(f.type, to)) for f in kind])
    return kind
