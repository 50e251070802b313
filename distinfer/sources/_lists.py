"""Lists of image paths: ``.txt`` (a path a line), ``.csv`` and ``.parquet`` (a ``path`` column).

Entries are taken as given; relative ones are resolved against the list's folder.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterator

from distinfer._errors import InputError
from distinfer.sources._refs import ImageRef, _is_image_name, safe_relpath

logger = logging.getLogger(__name__)

_PARQUET_BATCH_ROWS = 65_536


def _list_entry(list_dir: str, entry: str, where: str) -> ImageRef:
    entry = entry.strip()
    if not entry:
        return ImageRef(source=where, path="", error=f"empty path at {where}")
    path = os.path.join(list_dir, os.path.expanduser(entry))
    try:
        relpath = safe_relpath(entry)
    except InputError as exc:
        return ImageRef(source=path, path=path, error=str(exc))
    return ImageRef(source=path, path=path, relpath=relpath)


def _open_list(path: str, newline: str | None = None) -> Iterator[str]:
    try:
        with open(path, encoding="utf-8-sig", errors="surrogateescape", newline=newline) as f:
            yield from f
    except OSError as exc:
        raise InputError(f"cannot read list {path}: {exc.strerror or exc}") from exc


def _iter_txt(path: str) -> Iterator[ImageRef]:
    list_dir = os.path.dirname(path)
    for number, line in enumerate(_open_list(path), start=1):
        entry = line.strip()
        if entry and not entry.startswith("#"):
            yield _list_entry(list_dir, entry, f"{path}:{number}")


def _iter_csv(path: str) -> Iterator[ImageRef]:
    list_dir = os.path.dirname(path)
    rows = csv.reader(_open_list(path, newline=""))
    column = 0
    for number, row in enumerate(rows, start=1):
        if number == 1:
            names = [cell.strip().lower() for cell in row]
            if "path" in names:
                column = names.index("path")
                continue
            first = row[0].strip() if row else ""
            looks_like_path = _is_image_name(first) or os.path.exists(os.path.join(list_dir, first))
            if first and not looks_like_path:
                logger.info("%s: taking the first row %r as a header", path, row)
                continue
        if not row or not any(cell.strip() for cell in row):
            continue
        cell = row[column] if column < len(row) else ""
        yield _list_entry(list_dir, cell, f"{path}:{number}")


def _iter_parquet(path: str) -> Iterator[ImageRef]:
    import pyarrow.parquet as pq  # only needed for parquet lists

    try:
        table = pq.ParquetFile(path)
    except (OSError, ValueError) as exc:  # pyarrow raises ArrowInvalid (a ValueError)
        raise InputError(f"cannot read parquet list {path}: {exc}") from exc
    names = table.schema_arrow.names
    if "path" not in names:
        raise InputError(f"parquet list {path} has no 'path' column; its columns are {names}")
    list_dir = os.path.dirname(path)
    row = 0
    for batch in table.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=["path"]):
        for value in batch.column(0).to_pylist():
            row += 1
            yield _list_entry(list_dir, "" if value is None else str(value), f"{path}:row {row}")
