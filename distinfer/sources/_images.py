"""Lazy enumeration of image inputs and reading of their bytes.

:func:`iter_images` turns one input spec (a folder, a glob, an archive, a list file)
into a stream of :class:`ImageRef` references: small, picklable records that a
worker on another machine turns into bytes with :func:`read_bytes`. Enumeration is
lazy so the first images are processed while a huge listing is still being read.

Rules:

- Order is deterministic: names sorted within each directory, archive order for
  archives, line order for lists.
- Archives are never extracted, and member names are never used as paths:
  :func:`safe_relpath` gives the relative name for naming outputs.
- Something known to be bad while enumerating (a symlink loop, an archive member
  that is a symlink, a truncated archive) is yielded as a ref with ``error`` set,
  so it costs one error row; a spec that cannot be used at all raises
  :class:`~distinfer.InputError`.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

from distinfer._errors import InputError
from distinfer.sources._archives import (
    _TAR_SUFFIXES,
    ArchiveCache,
    _iter_tar,
    _iter_zip,
    _read_zip_member,
)
from distinfer.sources._lists import _iter_csv, _iter_parquet, _iter_txt
from distinfer.sources._refs import (
    DEFAULT_MAX_FILE_BYTES,
    ImageRef,
    _check_size,
    _is_image_name,
    _stat_regular,
)

logger = logging.getLogger(__name__)

_GLOB_MAGIC = re.compile(r"[*?\[]")


def iter_images(
    spec: str | Path, *, max_inline_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> Iterator[ImageRef]:
    """Enumerate the images of one input spec, lazily and in a deterministic order.

    ``spec`` is one of:

    - a folder: images found recursively, names sorted within each directory,
      symlinked directories followed, a symlink loop yielded as one error item;
    - a glob pattern (``*``, ``?``, ``[...]``, ``**`` for any depth), sorted likewise;
    - a ``.tar``: members carry their data offset and size, so a worker reads the
      byte range directly;
    - a ``.tar.gz``/``.tgz`` (or ``.bz2``/``.xz``): not seekable, so the member bytes
      are read here and carried inline in ``ImageRef.data`` (members over
      ``max_inline_bytes`` become error items);
    - a ``.zip``: members carry their name; the worker opens the zip;
    - a ``.txt`` (one path per line; blank lines and ``#`` comments skipped), a
      ``.csv`` (a ``path`` column, or else the first column) or a ``.parquet`` (a
      ``path`` column) list: entries taken as given, relative paths resolved
      against the list file's folder;
    - a single image file.

    Folders, globs and archives yield only names with an image extension
    (:data:`IMAGE_EXTENSIONS`). Raises :class:`~distinfer.InputError` here when the
    spec does not exist or is of an unknown kind, and at the first item when a list
    or archive cannot be opened at all.

    >>> refs = iter_images("photos/")  # doctest: +SKIP
    >>> next(refs).source  # doctest: +SKIP
    '/home/me/photos/2024/a.jpg'
    """
    text = os.path.expanduser(os.fspath(spec))
    path = os.path.abspath(text)
    if os.path.isdir(path):
        return _iter_folder(path)
    if os.path.exists(path):
        lower = path.lower()
        if lower.endswith(_TAR_SUFFIXES):
            return _iter_tar(path, max_inline_bytes)
        if lower.endswith(".zip"):
            return _iter_zip(path)
        if lower.endswith(".txt"):
            return _iter_txt(path)
        if lower.endswith(".csv"):
            return _iter_csv(path)
        if lower.endswith((".parquet", ".pq")):
            return _iter_parquet(path)
        if _is_image_name(path):
            return iter([ImageRef(source=path, path=path, relpath=os.path.basename(path))])
        raise InputError(
            f"unsupported input {text!r}: expected a folder, a glob, an image, a "
            ".tar/.tar.gz/.tgz/.zip archive, or a .txt/.csv/.parquet list of paths"
        )
    if _GLOB_MAGIC.search(text):
        return _iter_glob(path)
    parent = os.path.dirname(path)
    hint = "" if os.path.isdir(parent) else f" (its folder {parent!r} does not exist either)"
    raise InputError(f"input not found: {text!r}{hint}")


def read_bytes(ref: ImageRef, max_bytes: int, *, archives: ArchiveCache | None = None) -> bytes:
    """Read the bytes of one image reference, at most ``max_bytes``.

    Raises :class:`~distinfer.InputError` saying precisely why: missing, permission
    denied, is a directory, not a regular file, too large, truncated archive,
    missing or corrupt zip member, or the ref's own enumeration ``error``.

    >>> read_bytes(ImageRef(source="x", path="x", data=b"abc"), max_bytes=10)
    b'abc'
    """
    if ref.error is not None:
        raise InputError(ref.error)
    if ref.data is not None:
        _check_size(len(ref.data), max_bytes, ref.source)
        return ref.data
    if ref.offset is not None:
        return _read_range(ref.path, ref.offset, ref.size or 0, max_bytes, ref.source)
    if ref.member is not None:
        return _read_zip_member(ref, max_bytes, archives)
    return _read_file(ref.path, max_bytes)


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
    with os.scandir(path) as entries:
        return sorted(entries, key=lambda entry: entry.name)


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


def _iter_glob(pattern: str) -> Iterator[ImageRef]:
    parts = pattern.split(os.sep)
    first_magic = next(i for i, part in enumerate(parts) if _GLOB_MAGIC.search(part))
    base = os.sep.join(parts[:first_magic]) or os.sep
    for path, relpath in _glob_walk(base, "", parts[first_magic:], set()):
        if _is_image_name(path) and os.path.isfile(path):
            yield ImageRef(source=path, path=path, relpath=relpath)


def _glob_walk(
    base: str, rel: str, parts: list[str], ancestors: set[tuple[int, int]]
) -> Iterator[tuple[str, str]]:
    """Yield ``(path, relpath)`` matching ``parts`` under ``base``, sorted per directory."""
    head, rest = parts[0], parts[1:]
    if head == "**":
        try:
            key = _dir_key(os.stat(base))
            entries = _sorted_entries(base)
        except OSError:
            return
        if key in ancestors:
            logger.warning("glob: not following symlink loop at %s", base)
            return
        if rest:
            yield from _glob_walk(base, rel, rest, ancestors)
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if _is_dir(entry):
                yield from _glob_walk(entry.path, rel + entry.name + "/", parts, ancestors | {key})
            elif not rest:  # a trailing "**" matches every file below
                yield entry.path, rel + entry.name
        return
    if not _GLOB_MAGIC.search(head):
        path = os.path.join(base, head)
        if rest:
            if os.path.isdir(path):
                yield from _glob_walk(path, rel + head + "/", rest, ancestors)
        elif os.path.lexists(path):
            yield path, rel + head
        return
    try:
        entries = _sorted_entries(base)
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(".") and not head.startswith("."):
            continue  # like glob: wildcards do not match hidden names
        if not fnmatch.fnmatch(entry.name, head):
            continue
        if rest:
            if _is_dir(entry):
                yield from _glob_walk(entry.path, rel + entry.name + "/", rest, ancestors)
        else:
            yield entry.path, rel + entry.name
