"""A Parquet dataset written in index order, one atomic part at a time, with a manifest.

Layout of ``folder``::

    part-000000000000-000000004999.parquet   rows with index 0..4999
    part-000000005000-000000009999.parquet
    _manifest.json                           committed_until, parts, counts, stats
    _lock                                    held (flock) by the driver of the run

A part is written to a hidden temporary name and renamed into place; only
then is the manifest (also replaced atomically) updated. Rows below
``committed_until`` are therefore in exactly one listed part; a part file the
manifest does not list is the leftover of a crash and is deleted on open.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .._errors import OutputError, OutputExistsError
from ..distributed._rows import index_range
from ..engine._prediction import RESULT_SCHEMA

logger = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
LOCK = "_lock"
FORMAT = "distinfer-results"
_KEY = "output.parquet"


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    """The manifest of a results folder, or None when there is none."""
    path = Path(folder) / MANIFEST
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise OutputError(f"{path} is unreadable ({exc}); rerun with --overwrite") from exc
    if data.get("format") != FORMAT:
        raise OutputError(f"{path} is not a distinfer manifest; choose another output.parquet")
    return data


@contextmanager
def output_lock(folder: str | Path) -> Iterator[None]:
    """Hold a results folder for one run: a second run into it fails at once.

    An exclusive ``flock`` on ``folder/_lock``, released when the run ends,
    however it ends (the kernel drops it when the process dies). The folder
    is created if needed.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputExistsError(f"{folder} exists and is not a folder", _KEY)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise OutputExistsError(
                f"{folder} is being written by another distinfer run ({holder}); "
                "wait for it to finish or choose another output.parquet",
                _KEY,
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        yield
    finally:
        os.close(fd)


def _ours(folder: Path) -> list[Path]:
    """What is in a results folder, the lock aside."""
    return [p for p in folder.iterdir() if p.name != LOCK]


def prepare_output(folder: str | Path, fingerprint: str, *, overwrite: bool) -> int:
    """Check a results folder before a run; return the index to resume from.

    A finished output is refused unless ``overwrite``; so is an unfinished one
    from a different job (another fingerprint). ``overwrite`` deletes it.
    Refusals raise ``OutputExistsError`` naming ``output.parquet``.
    """
    folder = Path(folder)
    if overwrite and folder.exists():
        # Delete only what is recognisably ours: a results folder, or an empty one.
        # The lock stays: the run that holds it is this one.
        if folder.is_dir() and ((folder / MANIFEST).exists() or not _ours(folder)):
            for path in _ours(folder):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        else:
            raise OutputExistsError(
                f"{folder} exists and is not a distinfer results folder; "
                "refusing to delete it, choose another output.parquet",
                _KEY,
            )
    if folder.exists() and not folder.is_dir():
        raise OutputExistsError(f"{folder} exists and is not a folder", _KEY)
    manifest = read_manifest(folder) if folder.exists() else None
    if manifest is None:
        if folder.exists() and any(p.name.startswith("part-") for p in _ours(folder)):
            raise OutputExistsError(
                f"{folder} holds parts but no manifest; rerun with --overwrite", _KEY
            )
        return 0
    if manifest.get("finished"):
        raise OutputExistsError(
            f"{folder} already holds a finished run ({manifest.get('total')} items); "
            "rerun with --overwrite to replace it",
            _KEY,
        )
    if manifest.get("fingerprint") != fingerprint:
        raise OutputExistsError(
            f"{folder} holds an unfinished run of a different job (other model or inputs); "
            "rerun with --overwrite to replace it, or choose another output.parquet",
            _KEY,
        )
    resume: int = manifest["committed_until"]
    return resume


def _write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class ParquetSink:
    """Append record batches in index order; commit a part every ``rows_per_part`` rows.

    Batches are held as they come and cut into parts only at commit time, so
    the rows are never converted one by one.

    >>> sink = ParquetSink(tmp / "out", fingerprint="job")     # doctest: +SKIP
    >>> sink.write(ResultBatch.from_rows(rows).records)        # doctest: +SKIP
    >>> sink.finish(total=len(rows))                           # doctest: +SKIP
    """

    def __init__(self, folder: str | Path, *, fingerprint: str, rows_per_part: int = 5000) -> None:
        self.folder = Path(folder)
        self.rows_per_part = rows_per_part
        self.folder.mkdir(parents=True, exist_ok=True)
        manifest = read_manifest(self.folder)
        if manifest is not None and manifest.get("fingerprint") != fingerprint:
            raise OutputError(f"{self.folder}: manifest belongs to another job")
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
            _write_json_atomic(self.folder / MANIFEST, self.manifest)

    @property
    def committed_until(self) -> int:
        """Every index below this is in a committed part."""
        return int(self.manifest["committed_until"])

    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    def _remove_uncommitted(self) -> None:
        listed = {p["file"] for p in self.manifest["parts"]}
        for path in self.folder.iterdir():
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                path.unlink()
            elif path.name.startswith("part-") and path.name not in listed:
                logger.warning("removing %s: written but never committed (a crash)", path)
                path.unlink()

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
        _write_json_atomic(self.folder / MANIFEST, self.manifest)
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
        tmp = self.folder / f".{name}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, self.folder / name)
        # an error row is one with a non-empty message (as the driver counts them)
        errors = pc.sum(pc.greater(pc.utf8_length(table.column("error")), 0)).as_py() or 0
        self.manifest["parts"].append(
            {"file": name, "first": first, "last": last, "errors": errors}
        )
        self.manifest["committed_until"] = end
        self.manifest["rows"] += table.num_rows
        self.manifest["errors"] += errors
        _write_json_atomic(self.folder / MANIFEST, self.manifest)


def read_results(folder: str | Path) -> pa.Table:
    """All committed rows of a results folder, in index order."""
    manifest = read_manifest(folder)
    if manifest is None:
        raise OutputError(f"{folder} has no {MANIFEST}: not a distinfer results folder")
    tables = [
        pq.read_table(Path(folder) / p["file"], schema=RESULT_SCHEMA) for p in manifest["parts"]
    ]
    return pa.concat_tables(tables) if tables else RESULT_SCHEMA.empty_table()
