"""A Parquet dataset written in index order, one atomic part at a time, with a manifest.

Layout of ``folder``::

    part-000000000000-000000004999.parquet   rows with index 0..4999
    part-000000005000-000000009999.parquet
    _manifest.json                           committed_until, parts, counts, stats

A part is written to a hidden temporary name and renamed into place; only
then is the manifest (also replaced atomically) updated. Rows below
``committed_until`` are therefore in exactly one listed part; a part file the
manifest does not list is the leftover of a crash and is deleted on open.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .._errors import OutputError, OutputExistsError
from .._prediction import RESULT_SCHEMA

logger = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
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


def prepare_output(folder: str | Path, fingerprint: str, *, overwrite: bool) -> int:
    """Check a results folder before a run; return the index to resume from.

    A finished output is refused unless ``overwrite``; so is an unfinished one
    from a different job (another fingerprint). ``overwrite`` deletes it.
    Refusals raise ``OutputExistsError`` naming ``output.parquet``.
    """
    folder = Path(folder)
    if overwrite and folder.exists():
        # Delete only what is recognisably ours: a results folder, or an empty one.
        if folder.is_dir() and ((folder / MANIFEST).exists() or not any(folder.iterdir())):
            shutil.rmtree(folder)
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
        if folder.exists() and any(p.name.startswith("part-") for p in folder.iterdir()):
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
    """Append rows in index order; commit a part every ``rows_per_part`` rows.

    >>> sink = ParquetSink(tmp / "out", fingerprint="job")   # doctest: +SKIP
    >>> sink.write([{"index": 0, "source": "a.jpg", ...}])    # doctest: +SKIP
    >>> sink.finish(total=1)                                  # doctest: +SKIP
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
        self._pending: list[dict[str, Any]] = []
        if manifest is None:
            _write_json_atomic(self.folder / MANIFEST, self.manifest)

    @property
    def committed_until(self) -> int:
        """Every index below this is in a committed part."""
        return int(self.manifest["committed_until"])

    @property
    def pending_rows(self) -> int:
        return len(self._pending)

    def _remove_uncommitted(self) -> None:
        listed = {p["file"] for p in self.manifest["parts"]}
        for path in self.folder.iterdir():
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                path.unlink()
            elif path.name.startswith("part-") and path.name not in listed:
                logger.warning("removing %s: written but never committed (a crash)", path)
                path.unlink()

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        """Queue rows (index order, continuing the last row); commit full parts."""
        self._pending.extend(rows)
        while len(self._pending) >= self.rows_per_part:
            self._commit(self._pending[: self.rows_per_part])
            del self._pending[: self.rows_per_part]

    def flush(self) -> None:
        """Commit whatever is pending as a (smaller) part."""
        if self._pending:
            self._commit(self._pending)
            self._pending = []

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

    def _commit(self, rows: Sequence[dict[str, Any]]) -> None:
        first, last = rows[0]["index"], rows[-1]["index"]
        if first != self.committed_until or last - first + 1 != len(rows):
            raise OutputError(
                f"rows {first}..{last} do not continue the committed run at "
                f"{self.committed_until} (internal ordering error)"
            )
        name = f"part-{first:012d}-{last:012d}.parquet"
        tmp = self.folder / f".{name}.tmp"
        table = pa.Table.from_pylist(list(rows), schema=RESULT_SCHEMA)
        pq.write_table(table, tmp)
        os.replace(tmp, self.folder / name)
        errors = sum(1 for r in rows if r.get("error"))
        self.manifest["parts"].append(
            {"file": name, "first": first, "last": last, "errors": errors}
        )
        self.manifest["committed_until"] = last + 1
        self.manifest["rows"] += len(rows)
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
