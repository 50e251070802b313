"""Lists of image paths: ``.txt`` (a path a line), ``.csv`` and ``.parquet`` (a ``path`` column).

A list is a local file or an object; it is read as a stream. Entries are taken as
given: a path or a URI (``s3://bucket/a.jpg``, resolved with the run's storage
options). A relative entry is resolved against the list's folder: a local folder,
or the list's prefix on object storage.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import posixpath
from collections.abc import Iterator
from typing import Any

from distinfer._errors import InputError, StorageError, StorageUnavailableError
from distinfer.sources._refs import ImageRef, _is_image_name, safe_relpath
from distinfer.storage import FileSystem, StorageOptions, resolve_location

logger = logging.getLogger(__name__)

_PARQUET_BATCH_ROWS = 65_536


def _list_entry(
    fs: FileSystem, list_path: str, entry: str, where: str, options: StorageOptions | None
) -> ImageRef:
    entry = entry.strip()
    if not entry:
        return ImageRef(source=where, path="", error=f"empty path at {where}")
    if "://" in entry:
        return _uri_entry(entry, options)
    if fs.scheme == "file" or entry.startswith(("/", "~")):
        list_dir = os.path.dirname(list_path) if fs.scheme == "file" else "/"
        path = os.path.join(list_dir, os.path.expanduser(entry))
        try:
            relpath = safe_relpath(entry)
        except InputError as exc:
            return ImageRef(source=path, path=path, error=str(exc))
        return ImageRef(source=path, path=path, relpath=relpath)
    # A relative entry in a list on object storage: a key beside the list.
    key = posixpath.normpath(posixpath.join(posixpath.dirname(list_path), entry))
    if key == ".." or key.startswith("../"):
        return ImageRef(source=entry, path="", error=f"{where}: {entry!r} climbs out of the bucket")
    try:
        relpath = safe_relpath(entry)
    except InputError as exc:
        return ImageRef(source=fs.uri(key), path=key, error=str(exc), fs=fs)
    return ImageRef(source=fs.uri(key), path=key, relpath=relpath, fs=fs)


def _uri_entry(entry: str, options: StorageOptions | None) -> ImageRef:
    try:
        location = resolve_location(entry, "/", options)
    except ValueError as exc:  # UnsupportedLocationError: an unknown scheme, hdfs://, ...
        return ImageRef(source=entry, path="", error=str(exc))
    name = entry.partition("://")[2]  # bucket/key: the scheme is no folder name
    try:
        relpath = safe_relpath(name)
    except InputError as exc:
        return ImageRef(source=location.uri, path=location.path, error=str(exc), fs=location.fs)
    return ImageRef(source=location.uri, path=location.path, relpath=relpath, fs=location.fs)


def _open_list(fs: FileSystem, path: str, newline: str | None = None) -> Iterator[str]:
    try:
        with io.TextIOWrapper(
            fs.open(path), encoding="utf-8-sig", errors="surrogateescape", newline=newline
        ) as f:
            yield from f
    except StorageUnavailableError:
        raise
    except (OSError, StorageError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise InputError(f"cannot read list {fs.uri(path)}: {reason}") from exc


def _iter_txt(fs: FileSystem, path: str, options: StorageOptions | None) -> Iterator[ImageRef]:
    uri = fs.uri(path)
    for number, line in enumerate(_open_list(fs, path), start=1):
        entry = line.strip()
        if entry and not entry.startswith("#"):
            yield _list_entry(fs, path, entry, f"{uri}:{number}", options)


def _iter_csv(fs: FileSystem, path: str, options: StorageOptions | None) -> Iterator[ImageRef]:
    uri = fs.uri(path)
    rows = csv.reader(_open_list(fs, path, newline=""))
    column = 0
    for number, row in enumerate(rows, start=1):
        if number == 1:
            names = [cell.strip().lower() for cell in row]
            if "path" in names:
                column = names.index("path")
                continue
            first = row[0].strip() if row else ""
            looks_like_path = _is_image_name(first) or (
                fs.scheme == "file" and os.path.exists(os.path.join(os.path.dirname(path), first))
            )
            if first and not looks_like_path:
                logger.info("%s: taking the first row %r as a header", uri, row)
                continue
        if not row or not any(cell.strip() for cell in row):
            continue
        cell = row[column] if column < len(row) else ""
        yield _list_entry(fs, path, cell, f"{uri}:{number}", options)


def _iter_parquet(fs: FileSystem, path: str, options: StorageOptions | None) -> Iterator[ImageRef]:
    import pyarrow.parquet as pq  # only needed for parquet lists

    uri = fs.uri(path)
    source: Any = path if fs.scheme == "file" else None
    try:
        if source is None:
            source = fs.open(path)  # the footer, then each row group, by ranged reads
        table = pq.ParquetFile(source)
    except StorageUnavailableError:
        raise
    except (OSError, ValueError, StorageError) as exc:  # pyarrow raises ArrowInvalid (ValueError)
        raise InputError(f"cannot read parquet list {uri}: {exc}") from exc
    names = table.schema_arrow.names
    if "path" not in names:
        raise InputError(f"parquet list {uri} has no 'path' column; its columns are {names}")
    row = 0
    for batch in table.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=["path"]):
        for value in batch.column(0).to_pylist():
            row += 1
            yield _list_entry(
                fs, path, "" if value is None else str(value), f"{uri}:row {row}", options
            )
