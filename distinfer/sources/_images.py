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

import csv
import fnmatch
import logging
import os
import re
import stat
import tarfile
import threading
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from distinfer._errors import InputError

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "IMAGE_EXTENSIONS",
    "ArchiveCache",
    "ImageRef",
    "iter_images",
    "read_bytes",
    "safe_relpath",
]

logger = logging.getLogger(__name__)

#: File name extensions taken as images in folders, globs and archives.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})

#: Default cap on the bytes of one image file (and of members carried inline).
DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024

_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")
_GLOB_MAGIC = re.compile(r"[*?\[]")
_DRIVE = re.compile(r"^[A-Za-z]:")
_PARQUET_BATCH_ROWS = 65_536
_ZIP_SYMLINK_MODE = 0o120000
_MAX_FILE_BYTES_KEY = "input.max_file_bytes"


@dataclass(frozen=True, slots=True)
class ImageRef:
    """Where one image's bytes are, without the bytes (except for ``data``).

    Exactly one way to read applies, checked in this order:

    - ``error`` set: the item is known bad; reading raises ``InputError(error)``.
    - ``data`` set: bytes carried inline (members of compressed tars, which cannot
      be read at an offset).
    - ``offset`` set: ``size`` bytes at ``offset`` in the file ``path`` (members of
      uncompressed tars, read directly without scanning the archive).
    - ``member`` set: a member of the zip archive ``path``.
    - otherwise: the whole file ``path``.

    ``source`` is the display name (a path, or ``"archive!member"``) and ``relpath``
    a safe relative path (no ``..``, never absolute) for naming output files.

    >>> ImageRef(source="/data/a.jpg", path="/data/a.jpg", relpath="a.jpg").member is None
    True
    """

    source: str
    path: str
    member: str | None = None
    offset: int | None = None
    size: int | None = None
    data: bytes | None = field(default=None, repr=False)
    error: str | None = None
    relpath: str = ""

    def __post_init__(self) -> None:
        if self.offset is not None and (self.offset < 0 or self.size is None):
            raise ValueError(f"offset {self.offset} needs a size and must be >= 0")
        if self.size is not None and self.size < 0:
            raise ValueError(f"size must be >= 0, got {self.size}")
        if self.data is not None and self.offset is not None:
            raise ValueError("give either inline data or a byte range, not both")


class ArchiveCache:
    """Keeps the most recently used zip archives open for :func:`read_bytes`.

    Opening a zip parses its whole central directory; a worker reading many members
    of one archive should do that once. Thread-safe; an archive replaced on disk
    (new mtime or size) is reopened.

    >>> with ArchiveCache(max_open=4) as archives:
    ...     pass  # read_bytes(ref, max_bytes, archives=archives)
    """

    def __init__(self, max_open: int = 8) -> None:
        if max_open < 1:
            raise ValueError(f"max_open must be >= 1, got {max_open}")
        self._max_open = max_open
        self._lock = threading.Lock()
        self._open: OrderedDict[tuple[str, int, int], zipfile.ZipFile] = OrderedDict()

    def zip(self, path: str) -> zipfile.ZipFile:
        """Return an open ``ZipFile`` for ``path``, opening it if needed."""
        st = os.stat(path)
        key = (path, st.st_mtime_ns, st.st_size)
        with self._lock:
            archive = self._open.get(key)
            if archive is not None:
                self._open.move_to_end(key)
                return archive
        archive = zipfile.ZipFile(path)
        with self._lock:
            self._open[key] = archive
            while len(self._open) > self._max_open:
                # Not closed here: another thread may still be reading from it;
                # the garbage collector closes it when the last reader is done.
                self._open.popitem(last=False)
        return archive

    def close(self) -> None:
        """Close every cached archive."""
        with self._lock:
            archives = list(self._open.values())
            self._open.clear()
        for archive in archives:
            archive.close()

    def __enter__(self) -> ArchiveCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def safe_relpath(name: str) -> str:
    """Turn an untrusted name (an archive member, a list entry) into a safe relative path.

    Backslashes become ``/``; drive letters, leading slashes, ``.`` and ``..`` parts
    that would climb out are removed; NUL and other control characters become ``_``.
    Raises :class:`~distinfer.InputError` when nothing is left.

    >>> safe_relpath("../../etc/x.jpg"), safe_relpath("a/../../b.jpg")
    ('etc/x.jpg', 'b.jpg')
    >>> safe_relpath("C:\\\\photos\\\\a.jpg")
    'photos/a.jpg'
    """
    cleaned = "".join("_" if ord(ch) < 32 or ch == "\x7f" else ch for ch in name)
    cleaned = _DRIVE.sub("", cleaned.replace("\\", "/"))
    parts: list[str] = []
    for part in cleaned.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    if not parts:
        raise InputError(f"unsafe name {name!r}: nothing is left once '..', '/' and drives go")
    return "/".join(parts)


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


# Reading --------------------------------------------------------------------


def _check_size(size: int, max_bytes: int, source: str) -> None:
    if size > max_bytes:
        raise InputError(
            f"too large: {source} has {size:,} bytes, over the limit of {max_bytes:,} "
            f"(raise {_MAX_FILE_BYTES_KEY} to accept it)"
        )


def _stat_regular(path: str) -> os.stat_result:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise InputError(f"broken symlink: {path} -> {os.readlink(path)}") from None
        raise InputError(f"file not found: {path}") from None
    except PermissionError:
        raise InputError(f"permission denied: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"is a directory, not an image file: {path}")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"not a regular file (device, FIFO or socket): {path}")
    return st


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


def _read_zip_member(ref: ImageRef, max_bytes: int, archives: ArchiveCache | None) -> bytes:
    assert ref.member is not None
    _stat_regular(ref.path)
    try:
        archive = archives.zip(ref.path) if archives else zipfile.ZipFile(ref.path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"cannot open zip archive {ref.path}: {exc}") from exc
    try:
        try:
            info = archive.getinfo(ref.member)
        except KeyError:
            raise InputError(f"member not found in archive: {ref.source}") from None
        _check_size(info.file_size, max_bytes, ref.source)
        with archive.open(info) as member:
            data = member.read(max_bytes + 1)  # the declared size may lie (zip bombs)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        raise InputError(f"corrupt or unsupported zip member {ref.source}: {exc}") from exc
    finally:
        if archives is None:
            archive.close()
    _check_size(len(data), max_bytes, ref.source)
    return data


# Enumerating ----------------------------------------------------------------


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


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


def _member_error(archive: str, name: str, error: str) -> ImageRef:
    return ImageRef(source=f"{archive}!{name}", path=archive, member=name, error=error)


def _member_relpath(archive: str, name: str) -> ImageRef | str:
    try:
        return safe_relpath(name)
    except InputError as exc:
        return _member_error(archive, name, f"unsafe archive member name: {exc}")


def _iter_tar(path: str, max_inline_bytes: int) -> Iterator[ImageRef]:
    try:
        with open(path, "rb") as f:
            compressed = f.read(6).startswith(_COMPRESSED_MAGIC)
        # Stream mode for compressed tars: no seeking back, members read in order.
        archive = tarfile.open(path, mode="r|*" if compressed else "r:")  # noqa: SIM115
    except (tarfile.TarError, OSError) as exc:
        raise InputError(f"cannot open tar archive {path}: {exc}") from exc
    count = 0
    with archive:
        while True:
            try:
                info = archive.next()
            except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
                yield ImageRef(
                    source=path,
                    path=path,
                    error=f"tar archive truncated or corrupt after {count} members: {exc}",
                )
                return
            if info is None:
                return
            # TarFile remembers every member it has read; forget them so memory
            # stays flat on archives with millions of members.
            archive.members.clear()  # type: ignore[attr-defined]  # public, not in typeshed
            count += 1
            ref = _tar_member(archive, path, info, compressed, max_inline_bytes)
            if ref is not None:
                yield ref


def _tar_member(
    archive: tarfile.TarFile,
    path: str,
    info: tarfile.TarInfo,
    compressed: bool,
    max_inline_bytes: int,
) -> ImageRef | None:
    name = info.name
    if info.isdir() or not _is_image_name(name):
        return None
    relpath = _member_relpath(path, name)
    if isinstance(relpath, ImageRef):
        return relpath
    if info.issym() or info.islnk():
        kind = "symlink" if info.issym() else "hard link"
        return _member_error(path, name, f"archive member is a {kind}; not followed")
    if not info.isreg():
        return _member_error(path, name, "archive member is a device or FIFO, not a file")
    if info.sparse is not None:
        return _member_error(path, name, "archive member is a sparse file; not supported")
    source = f"{path}!{name}"
    if not compressed:
        return ImageRef(
            source=source,
            path=path,
            relpath=relpath,
            member=name,
            offset=info.offset_data,
            size=info.size,
        )
    if info.size > max_inline_bytes:
        return _member_error(
            path,
            name,
            f"too large: {info.size:,} bytes, over the limit of {max_inline_bytes:,} "
            f"(raise {_MAX_FILE_BYTES_KEY} to accept it)",
        )
    member = archive.extractfile(info)
    assert member is not None  # regular files always have a file object
    try:
        data = member.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        return _member_error(path, name, f"tar archive truncated inside this member: {exc}")
    if len(data) != info.size:
        return _member_error(
            path, name, f"archive truncated: {len(data):,} of {info.size:,} bytes present"
        )
    return ImageRef(source=source, path=path, relpath=relpath, member=name, data=data)


def _iter_zip(path: str) -> Iterator[ImageRef]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"cannot open zip archive {path}: {exc}") from exc
    with archive:
        infos = archive.infolist()
    for info in infos:
        name = info.filename
        if info.is_dir() or not _is_image_name(name):
            continue
        relpath = _member_relpath(path, name)
        if isinstance(relpath, ImageRef):
            yield relpath
        elif info.create_system == 3 and (info.external_attr >> 16) & 0o170000 == _ZIP_SYMLINK_MODE:
            yield _member_error(path, name, "archive member is a symlink; not followed")
        elif info.flag_bits & 0x1:
            yield _member_error(path, name, "archive member is encrypted; not supported")
        else:
            yield ImageRef(
                source=f"{path}!{name}",
                path=path,
                relpath=relpath,
                member=name,
                size=info.file_size,
            )


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
