"""Tar and zip archives: members listed without extracting, read back by byte range or name.

A plain ``.tar`` member is read by its byte range; a compressed tar cannot be
seeked, so its members travel inline; a zip member is read by name through an
``ArchiveCache``. A member that is a link, or an archive that ends early, is an
error item, never a path.

An archive on object storage is read through a ranged reader: a plain tar's
headers in blocks of ``TAR_INDEX_BLOCK_BYTES`` (the data of large members is
skipped, small members come along with their headers), a zip's central
directory from its end; a compressed tar is streamed once.
"""

from __future__ import annotations

import contextlib
import os
import tarfile
import threading
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from typing import BinaryIO

from distinfer._errors import InputError, StorageError, StorageUnavailableError
from distinfer.sources._refs import (
    _MAX_FILE_BYTES_KEY,
    ImageRef,
    _check_size,
    _is_image_name,
    _stat_regular,
    safe_relpath,
)
from distinfer.storage import FileSystem, LocalFileSystem

_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")
_ZIP_SYMLINK_MODE = 0o120000
#: A tar's headers are read in ranged reads of this size: one per header when the
#: members are larger, several headers per read when they are smaller.
TAR_INDEX_BLOCK_BYTES = 64 << 10
_LOCAL = LocalFileSystem()


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

    def zip(self, path: str, fs: FileSystem = _LOCAL) -> zipfile.ZipFile:
        """Return an open ``ZipFile`` for ``path`` of ``fs``, opening it if needed.

        On object storage the archive is read by ranged reads (each one checked
        against the version first opened), never downloaded whole."""
        if fs.scheme == "file":
            st = os.stat(path)
            key = (path, st.st_mtime_ns, st.st_size)
        else:
            key = (fs.uri(path), 0, 0)
        with self._lock:
            archive = self._open.get(key)
            if archive is not None:
                self._open.move_to_end(key)
                return archive
        archive = zipfile.ZipFile(path if fs.scheme == "file" else fs.open(path))
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


def _read_zip_member(ref: ImageRef, max_bytes: int, archives: ArchiveCache | None) -> bytes:
    assert ref.member is not None
    local = ref.fs.scheme == "file"
    if local:
        _stat_regular(ref.path)
    try:
        if archives is not None:
            archive = archives.zip(ref.path, ref.fs)
        else:
            archive = zipfile.ZipFile(ref.path if local else ref.fs.open(ref.path))
    except StorageUnavailableError:
        raise
    except (zipfile.BadZipFile, OSError, StorageError) as exc:
        raise InputError(f"cannot open zip archive {ref.fs.uri(ref.path)}: {exc}") from exc
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


def _member_error(fs: FileSystem, archive: str, name: str, error: str) -> ImageRef:
    source = f"{fs.uri(archive)}!{name}"
    return ImageRef(source=source, path=archive, member=name, error=error, fs=fs)


def _member_relpath(fs: FileSystem, archive: str, name: str) -> ImageRef | str:
    try:
        return safe_relpath(name)
    except InputError as exc:
        return _member_error(fs, archive, name, f"unsafe archive member name: {exc}")


def _iter_tar(fs: FileSystem, path: str, max_inline_bytes: int) -> Iterator[ImageRef]:
    uri = fs.uri(path)
    try:
        reader = fs.open(path, block_size=TAR_INDEX_BLOCK_BYTES)
    except StorageUnavailableError:
        raise
    except (OSError, StorageError) as exc:
        raise InputError(f"cannot open tar archive {uri}: {exc}") from exc
    with reader:
        yield from _tar_members(fs, path, reader, max_inline_bytes)


def _tar_members(
    fs: FileSystem, path: str, reader: BinaryIO, max_inline_bytes: int
) -> Iterator[ImageRef]:
    uri = fs.uri(path)
    try:
        compressed = reader.read(6).startswith(_COMPRESSED_MAGIC)
        reader.seek(0)
        # Stream mode for compressed tars: no seeking back, members read in order.
        archive = tarfile.open(fileobj=reader, mode="r|*" if compressed else "r:")  # noqa: SIM115
    except (tarfile.TarError, OSError) as exc:
        raise InputError(f"cannot open tar archive {uri}: {exc}") from exc
    count = 0
    with archive:
        while True:
            try:
                info = archive.next()
            except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
                yield ImageRef(
                    source=uri,
                    path=path,
                    error=f"tar archive truncated or corrupt after {count} members: {exc}",
                    fs=fs,
                )
                return
            if info is None:
                return
            # TarFile remembers every member it has read; forget them so memory
            # stays flat on archives with millions of members.
            archive.members.clear()  # type: ignore[attr-defined]  # public, not in typeshed
            count += 1
            ref = _tar_member(archive, fs, path, info, compressed, max_inline_bytes)
            if ref is not None:
                yield ref


def _tar_member(
    archive: tarfile.TarFile,
    fs: FileSystem,
    path: str,
    info: tarfile.TarInfo,
    compressed: bool,
    max_inline_bytes: int,
) -> ImageRef | None:
    name = info.name
    if info.isdir() or not _is_image_name(name):
        return None
    relpath = _member_relpath(fs, path, name)
    if isinstance(relpath, ImageRef):
        return relpath
    if info.issym() or info.islnk():
        kind = "symlink" if info.issym() else "hard link"
        return _member_error(fs, path, name, f"archive member is a {kind}; not followed")
    if not info.isreg():
        return _member_error(fs, path, name, "archive member is a device or FIFO, not a file")
    if info.sparse is not None:
        return _member_error(fs, path, name, "archive member is a sparse file; not supported")
    source = f"{fs.uri(path)}!{name}"
    if not compressed:
        return ImageRef(
            source=source,
            path=path,
            relpath=relpath,
            member=name,
            offset=info.offset_data,
            size=info.size,
            fs=fs,
        )
    if info.size > max_inline_bytes:
        return _member_error(
            fs,
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
        return _member_error(fs, path, name, f"tar archive truncated inside this member: {exc}")
    if len(data) != info.size:
        return _member_error(
            fs, path, name, f"archive truncated: {len(data):,} of {info.size:,} bytes present"
        )
    return ImageRef(source=source, path=path, relpath=relpath, member=name, data=data, fs=fs)


def _iter_zip(fs: FileSystem, path: str) -> Iterator[ImageRef]:
    uri = fs.uri(path)
    try:
        # On object storage: ranged reads of the end of the archive, where the
        # central directory is; closed once it is read.
        with contextlib.ExitStack() as stack:
            source = path if fs.scheme == "file" else stack.enter_context(fs.open(path))
            with zipfile.ZipFile(source) as archive:
                infos = archive.infolist()
    except StorageUnavailableError:
        raise
    except (zipfile.BadZipFile, OSError, StorageError) as exc:
        raise InputError(f"cannot open zip archive {uri}: {exc}") from exc
    for info in infos:
        name = info.filename
        if info.is_dir() or not _is_image_name(name):
            continue
        relpath = _member_relpath(fs, path, name)
        if isinstance(relpath, ImageRef):
            yield relpath
        elif info.create_system == 3 and (info.external_attr >> 16) & 0o170000 == _ZIP_SYMLINK_MODE:
            yield _member_error(fs, path, name, "archive member is a symlink; not followed")
        elif info.flag_bits & 0x1:
            yield _member_error(fs, path, name, "archive member is encrypted; not supported")
        else:
            yield ImageRef(
                source=f"{uri}!{name}",
                path=path,
                relpath=relpath,
                member=name,
                size=info.file_size,
                fs=fs,
            )
