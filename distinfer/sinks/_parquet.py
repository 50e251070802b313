"""A Parquet dataset written in index order, one atomic part at a time, with a manifest.

Layout of the output folder (a local folder, or a prefix on object storage)::

    part-000000000000-000000004999.parquet   rows with index 0..4999
    part-000000005000-000000009999.parquet
    _manifest.json                           committed_until, parts, counts, stats
    _lock                                    held by the driver of the run

A part is written whole before it is visible (on a local disk a hidden
temporary name renamed into place; on object storage one PUT, which shows
nothing until it completes); only then is the manifest replaced, as one
unit, and only if it is still the version this run wrote last (a conditional
write: two writers can never interleave manifests). Rows below
``committed_until`` are therefore in exactly one listed part; a part the
manifest does not list is the leftover of a crash and is deleted on open.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .._errors import (
    OutputError,
    OutputExistsError,
    PreconditionFailedError,
    StorageError,
    StorageUnavailableError,
)
from ..distributed._rows import index_range
from ..engine._prediction import RESULT_SCHEMA
from ..storage import Location, resolve_location

logger = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
LOCK = "_lock"
FORMAT = "distinfer-results"
_KEY = "output.parquet"
#: A manifest lists every part: a few hundred bytes each.
_MAX_MANIFEST_BYTES = 256 << 20


def as_location(folder: str | Path | Location) -> Location:
    """A results folder as a location: a path or URI is resolved (from the cwd)."""
    return folder if isinstance(folder, Location) else resolve_location(os.fspath(folder), ".")


def _read_manifest(folder: Location) -> tuple[dict[str, Any] | None, str | None]:
    """The manifest and its tag (the version to replace), or ``(None, None)``."""
    where = folder.join(MANIFEST)
    try:
        tag = where.fs.info(where.path).tag  # before the read: a change in between
        raw = where.fs.read(where.path, _MAX_MANIFEST_BYTES)  # fails our replace later
    except FileNotFoundError:
        return None, None
    except StorageUnavailableError:
        raise
    except (OSError, StorageError) as exc:
        raise OutputError(f"{where.uri} is unreadable ({exc}); rerun with --overwrite") from exc
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise OutputError(f"{where.uri} is unreadable ({exc}); rerun with --overwrite") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise OutputError(f"{where.uri} is not a distinfer manifest; choose another output.parquet")
    return data, tag


def read_manifest(folder: str | Path | Location) -> dict[str, Any] | None:
    """The manifest of a results folder (a path or URI), or None when there is none."""
    return _read_manifest(as_location(folder))[0]


def _contents(folder: Location) -> list[str]:
    """What is in a results folder, the lock aside: names relative to it (on object
    storage every key below it; on a local disk its entries)."""
    if folder.is_local:
        path = folder.path.rstrip("/") or "/"
        return [n for n in os.listdir(path) if n != LOCK] if os.path.isdir(path) else []
    prefix = folder.path.strip("/")
    cut = len(prefix) + 1 if prefix else 0
    return [i.path[cut:] for i in folder.fs.list(prefix) if i.path[cut:] != LOCK]


def _delete(folder: Location, name: str) -> None:
    target = folder.join(name)
    if target.is_local and os.path.isdir(target.path):
        shutil.rmtree(target.path)
    else:
        target.fs.delete(target.path)


def prepare_output(folder: str | Path | Location, fingerprint: str, *, overwrite: bool) -> int:
    """Check a results folder before a run; return the index to resume from.

    A finished output is refused unless ``overwrite``; so is an unfinished one
    from a different job (another fingerprint). ``overwrite`` deletes it.
    Refusals raise ``OutputExistsError`` naming ``output.parquet``.
    """
    location = as_location(folder)
    local = location.path.rstrip("/") or "/"
    if location.is_local and os.path.exists(local) and not os.path.isdir(local):
        raise OutputExistsError(f"{location.uri} exists and is not a folder", _KEY)
    contents = _contents(location)
    if overwrite and contents:
        # Delete only what is recognisably ours: a results folder, or an empty one.
        # The lock stays: the run that holds it is this one.
        if MANIFEST not in contents:
            raise OutputExistsError(
                f"{location.uri} exists and is not a distinfer results folder; "
                "refusing to delete it, choose another output.parquet",
                _KEY,
            )
        for name in contents:
            _delete(location, name)
        contents = []
    manifest = read_manifest(location) if MANIFEST in contents else None
    if manifest is None:
        if any(name.startswith("part-") for name in contents):
            raise OutputExistsError(
                f"{location.uri} holds parts but no manifest; rerun with --overwrite", _KEY
            )
        return 0
    if manifest.get("finished"):
        raise OutputExistsError(
            f"{location.uri} already holds a finished run ({manifest.get('total')} items); "
            "rerun with --overwrite to replace it",
            _KEY,
        )
    if manifest.get("fingerprint") != fingerprint:
        raise OutputExistsError(
            f"{location.uri} holds an unfinished run of a different job (other model or "
            "inputs); rerun with --overwrite to replace it, or choose another output.parquet",
            _KEY,
        )
    resume: int = manifest["committed_until"]
    return resume


@contextlib.contextmanager
def open_part(part: Location) -> Iterator[Any]:
    """What pyarrow reads a part from: its local path, or a ranged reader (the footer,
    then the column chunks, each a ranged GET) on object storage."""
    if part.is_local:
        yield part.path
        return
    with part.fs.open(part.path) as reader:
        yield reader


class ParquetSink:
    """Append record batches in index order; commit a part every ``rows_per_part`` rows.

    Batches are held as they come and cut into parts only at commit time, so
    the rows are never converted one by one.

    ``fence`` runs before each part is written: on object storage it checks that
    this run still holds the output lock (``distinfer.storage.LockFence.check``).

    >>> sink = ParquetSink(tmp / "out", fingerprint="job")     # doctest: +SKIP
    >>> sink.write(ResultBatch.from_rows(rows).records)        # doctest: +SKIP
    >>> sink.finish(total=len(rows))                           # doctest: +SKIP
    """

    def __init__(
        self,
        folder: str | Path | Location,
        *,
        fingerprint: str,
        rows_per_part: int = 5000,
        fence: Callable[[], None] | None = None,
    ) -> None:
        self.location = as_location(folder)
        self.rows_per_part = rows_per_part
        self.fence = fence
        if self.location.is_local:
            os.makedirs(self.location.path, exist_ok=True)
        manifest, self._tag = _read_manifest(self.location)
        if manifest is not None and manifest.get("fingerprint") != fingerprint:
            raise OutputError(f"{self.location.uri}: manifest belongs to another job")
        self.manifest: dict[str, Any] = manifest or {
            "format": FORMAT,
            "version": 1,
            "fingerprint": fingerprint,
            "committed_until": 0,
            "rows": 0,
            "errors": 0,
            "parts": [],
            "finished": False,
        }
        self._remove_uncommitted()
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        if manifest is None:
            self._write_manifest()

    @property
    def committed_until(self) -> int:
        """Every index below this is in a committed part."""
        return int(self.manifest["committed_until"])

    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    def _remove_uncommitted(self) -> None:
        listed = {p["file"] for p in self.manifest["parts"]}
        for name in _contents(self.location):
            if "/" in name:
                continue
            if name.startswith(".") and name.endswith(".tmp"):
                _delete(self.location, name)  # a local write cut short
            elif name.startswith("part-") and name not in listed:
                logger.warning(
                    "removing %s: written but never committed (a crash)",
                    self.location.join(name).uri,
                )
                _delete(self.location, name)

    def _write_manifest(self) -> None:
        """Replace the manifest, only if it is still the version this sink wrote last."""
        where = self.location.join(MANIFEST)
        data = json.dumps(self.manifest, indent=1).encode()
        try:
            if self._tag is None:
                self._tag = where.fs.create(where.path, data)
            else:
                self._tag = where.fs.replace(where.path, data, if_match=self._tag)
        except (PreconditionFailedError, FileNotFoundError, FileExistsError) as exc:
            raise OutputError(
                f"{where.uri} was changed by someone else while this run wrote it ({exc}); "
                "stopping so that two runs never write the same output"
            ) from exc

    def read_part(self, part: Mapping[str, Any]) -> pa.Table:
        """The rows of one committed part (an entry of ``manifest["parts"]``)."""
        with open_part(self.location.join(part["file"])) as source:
            return pq.read_table(source, schema=RESULT_SCHEMA)

    def write(self, batch: pa.RecordBatch) -> None:
        """Queue ``batch`` (``RESULT_SCHEMA``, consecutive indices continuing the last
        row written); commit every full part."""
        first, end = index_range(batch)
        expected = self.committed_until + self._pending_rows
        if first != expected:
            raise OutputError(
                f"rows {first}..{end - 1} do not continue the rows written so far at "
                f"{expected} (internal ordering error)"
            )
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        if self._pending_rows < self.rows_per_part:
            return
        table = pa.Table.from_batches(self._pending, schema=RESULT_SCHEMA)
        done = 0
        while table.num_rows - done >= self.rows_per_part:
            self._commit(table.slice(done, self.rows_per_part))
            done += self.rows_per_part
        rest = table.slice(done)
        self._pending = rest.to_batches()
        self._pending_rows = rest.num_rows

    def flush(self) -> None:
        """Commit whatever is pending as a (smaller) part."""
        if self._pending_rows:
            self._commit(pa.Table.from_batches(self._pending, schema=RESULT_SCHEMA))
            self._pending, self._pending_rows = [], 0

    def finish(self, total: int, stats: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Commit the rest and mark the run finished; return the manifest."""
        self.flush()
        if self.committed_until != total:
            raise OutputError(
                f"run ended with {self.committed_until} of {total} items committed; "
                "rerun the same command to resume"
            )
        self.manifest.update(finished=True, total=total, stats=dict(stats or {}))
        if self.fence is not None:
            self.fence()
        self._write_manifest()
        return self.manifest

    def _commit(self, table: pa.Table) -> None:
        first, end = index_range(table)
        if first != self.committed_until:
            raise OutputError(
                f"rows {first}..{end - 1} do not continue the committed run at "
                f"{self.committed_until} (internal ordering error)"
            )
        last = end - 1
        name = f"part-{first:012d}-{last:012d}.parquet"
        buffer = pa.BufferOutputStream()
        pq.write_table(table, buffer)
        if self.fence is not None:
            self.fence()  # another run may own the output now: write nothing then
        part = self.location.join(name)
        part.fs.write(part.path, buffer.getvalue().to_pybytes())  # whole, or not at all
        # an error row is one with a non-empty message (as the driver counts them)
        errors = pc.sum(pc.greater(pc.utf8_length(table.column("error")), 0)).as_py() or 0
        self.manifest["parts"].append(
            {"file": name, "first": first, "last": last, "errors": errors}
        )
        self.manifest["committed_until"] = end
        self.manifest["rows"] += table.num_rows
        self.manifest["errors"] += errors
        self._write_manifest()


def read_results(folder: str | Path | Location) -> pa.Table:
    """All committed rows of a results folder (a path or URI), in index order."""
    location = as_location(folder)
    manifest = read_manifest(location)
    if manifest is None:
        raise OutputError(f"{location.uri} has no {MANIFEST}: not a distinfer results folder")
    tables = []
    for part in manifest["parts"]:
        with open_part(location.join(part["file"])) as source:
            tables.append(pq.read_table(source, schema=RESULT_SCHEMA))
    return pa.concat_tables(tables) if tables else RESULT_SCHEMA.empty_table()
