"""Lazy enumeration of image inputs and reading of their bytes.

:func:`iter_images` turns one input spec (a folder, a glob, an archive, a list file)
into a stream of :class:`ImageRef` references: small, picklable records that a
worker on another machine turns into bytes with :func:`read_bytes`. Enumeration is
lazy so the first images are processed while a huge listing is still being read.

Rules:

- Order is deterministic: folders and globs in lexicographic order of the full
  path, the order object stores list keys in (``a.jpg`` before ``a/b.jpg``; a
  local folder is walked in that same order), archive order for archives, line
  order for lists.
- A spec is a local path or a URI (``s3://bucket/pages/``): the same kinds of input
  work on both, through the storage layer (``distinfer.storage``); a ref names its
  filesystem, so a worker on any node reads it with its own credentials.
- Archives are never extracted, and member names are never used as paths:
  :func:`safe_relpath` gives the relative name for naming outputs.
- Something known to be bad while enumerating (a symlink loop, an archive member
  that is a symlink, a truncated archive) is yielded as a ref with ``error`` set,
  so it costs one error row; a spec that cannot be used at all raises
  :class:`~distinfer.InputError`.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from distinfer._errors import (
    InputError,
    ObjectSizeError,
    StorageError,
    StorageUnavailableError,
)
from distinfer.sources._archives import (
    _TAR_SUFFIXES,
    ArchiveCache,
    _iter_tar,
    _iter_zip,
    _read_zip_member,
)
from distinfer.sources._glob import has_magic, iter_glob
from distinfer.sources._lists import _iter_csv, _iter_parquet, _iter_txt
from distinfer.sources._refs import (
    _MAX_FILE_BYTES_KEY,
    DEFAULT_MAX_FILE_BYTES,
    ImageRef,
    _check_size,
    _is_image_name,
    _stat_regular,
)
from distinfer.storage import FileSystem, LocalFileSystem, Location, StorageOptions, lookup
from distinfer.storage import resolve_location as _resolve

logger = logging.getLogger(__name__)

_LOCAL = LocalFileSystem()


def iter_images(
    spec: str | Path | Location,
    *,
    max_inline_bytes: int = DEFAULT_MAX_FILE_BYTES,
    options: StorageOptions | None = None,
) -> Iterator[ImageRef]:
    """Enumerate the images of one input spec, lazily and in a deterministic order.

    ``spec`` is a local path, a URI (``s3://bucket/pages/``) or a resolved
    :class:`~distinfer.storage.Location`, naming one of:

    - a folder (a prefix on object storage): images found recursively, in
      lexicographic order of their path; local symlinked directories followed, a
      symlink loop yielded as one error item. A URI without a trailing ``/`` is one
      object if there is one, else a prefix;
    - a glob pattern (``*``, ``?``, ``[...]``, ``**`` for any depth), in the same order;
    - a ``.tar``: members carry their data offset and size, so a worker reads the
      byte range directly (the archive's headers are read by ranged reads, never
      the whole archive at once);
    - a ``.tar.gz``/``.tgz`` (or ``.bz2``/``.xz``): not seekable, so the archive is
      streamed once here and member bytes carried inline in ``ImageRef.data``
      (members over ``max_inline_bytes`` become error items);
    - a ``.zip``: members carry their name; the worker opens the zip (its central
      directory, then the member, by ranged reads on object storage);
    - a ``.txt`` (one path per line; blank lines and ``#`` comments skipped), a
      ``.csv`` (a ``path`` column, or else the first column) or a ``.parquet`` (a
      ``path`` column) list: entries are paths or URIs, relative ones resolved
      against the list's folder (``options`` for the URIs);
    - a single image file.

    Folders, globs and archives yield only names with an image extension
    (:data:`IMAGE_EXTENSIONS`). Raises :class:`~distinfer.InputError` here when the
    spec does not exist or is of an unknown kind, and at the first item when a list
    or archive cannot be opened at all.

    >>> refs = iter_images("photos/")  # doctest: +SKIP
    >>> next(refs).source  # doctest: +SKIP
    '/home/me/photos/2024/a.jpg'
    """
    location = spec if isinstance(spec, Location) else _resolve(os.fspath(spec), ".", options)
    if not location.is_local:
        return _iter_remote(location, max_inline_bytes, options)
    path = location.path.rstrip("/") or "/"
    if os.path.isdir(path):
        return _iter_folder(path)
    if os.path.exists(path):
        return _iter_file(_LOCAL, path, max_inline_bytes, options)
    if has_magic(path):
        return _iter_glob(_LOCAL, path)
    parent = os.path.dirname(path)
    hint = "" if os.path.isdir(parent) else f" (its folder {parent!r} does not exist either)"
    raise InputError(f"input not found: {path!r}{hint}")


def _iter_file(
    fs: FileSystem, path: str, max_inline_bytes: int, options: StorageOptions | None
) -> Iterator[ImageRef]:
    """The images of one file: an archive, a list, or an image."""
    lower = path.lower()
    if lower.endswith(_TAR_SUFFIXES):
        return _iter_tar(fs, path, max_inline_bytes)
    if lower.endswith(".zip"):
        return _iter_zip(fs, path)
    if lower.endswith(".txt"):
        return _iter_txt(fs, path, options)
    if lower.endswith(".csv"):
        return _iter_csv(fs, path, options)
    if lower.endswith((".parquet", ".pq")):
        return _iter_parquet(fs, path, options)
    if _is_image_name(path):
        name = path.rsplit("/", 1)[-1]
        return iter([ImageRef(source=fs.uri(path), path=path, relpath=name, fs=fs)])
    raise InputError(
        f"unsupported input {fs.uri(path)!r}: expected a folder, a glob, an image, a "
        ".tar/.tar.gz/.tgz/.zip archive, or a .txt/.csv/.parquet list of paths"
    )


def _iter_remote(
    location: Location, max_inline_bytes: int, options: StorageOptions | None
) -> Iterator[ImageRef]:
    fs, key = location.fs, location.path
    if has_magic(key):
        return _iter_glob(fs, key)
    info, infos = lookup(location)  # an object of that name, or else a prefix
    if info is not None:
        return _iter_file(fs, key, max_inline_bytes, options)
    first = next(infos, None)  # one LIST page, now: a name that matches nothing fails here
    if first is None and not location.is_prefix:
        raise InputError(
            f"input not found: {location.uri!r} (no object of that name, and none below it)"
        )
    cut = len(key.strip("/")) + 1 if key.strip("/") else 0
    listed = itertools.chain([first], infos) if first is not None else iter(())
    return (
        ImageRef(source=fs.uri(info.path), path=info.path, relpath=info.path[cut:], fs=fs)
        for info in listed
        if _is_image_name(info.path)
    )


def read_bytes(ref: ImageRef, max_bytes: int, *, archives: ArchiveCache | None = None) -> bytes:
    """Read the bytes of one image reference, at most ``max_bytes``.

    Raises :class:`~distinfer.InputError` saying precisely why: missing, permission
    denied, is a directory, not a regular file, too large, truncated archive,
    missing or corrupt zip member, or the ref's own enumeration ``error``. A store
    that does not answer after every retry raises
    :class:`~distinfer.storage.StorageUnavailableError`: that is not the image's fault.

    >>> read_bytes(ImageRef(source="x", path="x", data=b"abc"), max_bytes=10)
    b'abc'
    """
    if ref.error is not None:
        raise InputError(ref.error)
    if ref.data is not None:
        _check_size(len(ref.data), max_bytes, ref.source)
        return ref.data
    if ref.fs.scheme != "file":
        return _read_object(ref, max_bytes, archives)
    if ref.offset is not None:
        return _read_range(ref.path, ref.offset, ref.size or 0, max_bytes, ref.source)
    if ref.member is not None:
        return _read_zip_member(ref, max_bytes, archives)
    return _read_file(ref.path, max_bytes)


def _read_object(ref: ImageRef, max_bytes: int, archives: ArchiveCache | None) -> bytes:
    """``read_bytes`` on object storage: one GET (a ranged one for a tar member)."""
    uri = ref.fs.uri(ref.path)
    try:
        if ref.offset is not None:
            _check_size(ref.size or 0, max_bytes, ref.source)
            return ref.fs.read_range(ref.path, ref.offset, ref.size or 0)
        if ref.member is not None:
            return _read_zip_member(ref, max_bytes, archives)
        return ref.fs.read(ref.path, max_bytes)
    except StorageUnavailableError:
        raise  # the store, not this image: the unit fails and the run stops
    except FileNotFoundError:
        raise InputError(f"file not found: {uri}") from None
    except PermissionError as exc:
        raise InputError(f"permission denied: {exc}") from None
    except ObjectSizeError as exc:
        if ref.offset is not None:
            raise InputError(f"archive truncated: {ref.source}: {exc}") from None
        raise InputError(f"too large: {exc} (raise {_MAX_FILE_BYTES_KEY} to accept it)") from None
    except StorageError as exc:
        raise InputError(f"cannot read {ref.source}: {exc}") from exc


def _read_file(path: str, max_bytes: int) -> bytes:
    # stat first: opening a FIFO would block.
    _check_size(_stat_regular(path).st_size, max_bytes, path)
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except PermissionError:
        raise InputError(f"permission denied: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    _check_size(len(data), max_bytes, path)  # the file grew after stat
    return data


def _read_range(path: str, offset: int, size: int, max_bytes: int, source: str) -> bytes:
    _check_size(size, max_bytes, source)
    _stat_regular(path)
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(size)
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc.strerror or exc}") from exc
    if len(data) != size:
        raise InputError(
            f"archive truncated: {source} should have {size:,} bytes at offset {offset:,}, "
            f"found {len(data):,}"
        )
    return data


def _sorted_entries(path: str) -> list[os.DirEntry[str]]:
    """The entries of a folder in object-store key order: a folder sorts as ``name/``."""
    with os.scandir(path) as entries:
        return sorted(entries, key=lambda e: e.name + "/" if _is_dir(e) else e.name)


def _is_dir(entry: os.DirEntry[str]) -> bool:
    """``entry.is_dir()`` following symlinks, False when the target cannot be stat'ed."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _dir_key(st: os.stat_result) -> tuple[int, int]:
    return (st.st_dev, st.st_ino)


def _unresolvable(path: str) -> str:
    try:
        os.stat(path)
    except OSError as exc:
        return exc.strerror or str(exc)
    return "not a regular file"


def _iter_folder(root: str) -> Iterator[ImageRef]:
    root_key = _dir_key(os.stat(root))
    try:
        first = _sorted_entries(root)
    except OSError as exc:
        raise InputError(f"cannot list folder {root}: {exc.strerror or exc}") from exc
    # Depth-first with an explicit stack (no recursion limit on deep trees); the
    # ancestors' (st_dev, st_ino) identify a symlink pointing back up the tree.
    ancestors = {root_key}
    stack: list[tuple[tuple[int, int], str, Iterator[os.DirEntry[str]]]] = [
        (root_key, "", iter(first))
    ]
    while stack:
        key, prefix, entries = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            ancestors.discard(key)
            continue
        relpath = prefix + entry.name
        if _is_dir(entry):
            try:
                child_key = _dir_key(entry.stat())
                if child_key in ancestors:
                    target = os.path.realpath(entry.path)
                    yield ImageRef(
                        source=entry.path,
                        path=entry.path,
                        relpath=relpath,
                        error=f"directory symlink loop: {entry.path} -> {target} (an "
                        "ancestor folder); not followed",
                    )
                    continue
                children = _sorted_entries(entry.path)
            except OSError as exc:
                yield ImageRef(
                    source=entry.path,
                    path=entry.path,
                    relpath=relpath,
                    error=f"cannot list folder {entry.path}: {exc.strerror or exc}",
                )
                continue
            ancestors.add(child_key)
            stack.append((child_key, relpath + "/", iter(children)))
        elif _is_image_name(entry.name):
            error = None
            if not entry.is_file():
                kind = "broken symlink" if entry.is_symlink() else "not a regular file"
                error = f"{kind}: {entry.path} ({_unresolvable(entry.path)})"
            yield ImageRef(source=entry.path, path=entry.path, relpath=relpath, error=error)


def _iter_glob(fs: FileSystem, pattern: str) -> Iterator[ImageRef]:
    for path, relpath in iter_glob(fs, pattern):
        if _is_image_name(path):
            yield ImageRef(source=fs.uri(path), path=path, relpath=relpath, fs=fs)
