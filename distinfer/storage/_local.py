"""A local (or shared, mounted) disk behind the same interface as object storage."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from .._errors import ObjectSizeError, PreconditionFailedError, StorageAccessError
from ._filesystem import DEFAULT_BLOCK_SIZE, ObjectInfo

logger = logging.getLogger(__name__)


def _tag(st: os.stat_result) -> str:
    # A replace writes a new inode, so the tag changes even within one mtime tick.
    return f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"


def _info(path: str, st: os.stat_result) -> ObjectInfo:
    return ObjectInfo(path=path, size=st.st_size, tag=_tag(st), mtime_s=st.st_mtime)


@dataclass(frozen=True)
class LocalFileSystem:
    """Absolute local paths; a shared filesystem mounted on every node works the same.

    Writes go to a temporary name in the same folder, are flushed to disk, and are
    renamed into place, so a reader sees the old file or the new one, never half.
    ``create`` links the finished temporary file into place (atomic, fails if the
    name exists); ``replace`` compares tags and then renames, which is atomic for
    readers but not against a concurrent writer: on a local disk the output lock
    (``flock``) already makes one run the only writer.
    """

    @property
    def scheme(self) -> str:
        return "file"

    def uri(self, path: str) -> str:
        return path

    def info(self, path: str) -> ObjectInfo:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(f"{path}: is a folder, not a file")
        return _info(path, st)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every file below the folder ``prefix``, in the order object stores list keys.

        Entries are sorted with a folder compared as ``name + "/"``, which yields
        full paths in lexicographic order (``a.jpg`` before ``a/b.jpg``), one folder
        read at a time. Symlinks are followed; a symlinked folder that leads back to
        one of its own parents is skipped with a warning. A missing folder lists
        nothing, as a missing prefix does on object storage.
        """
        root = prefix.rstrip("/") or "/"
        try:
            st = os.stat(root)
        except FileNotFoundError:
            return iter(())
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(f"{root}: is a file, not a folder")
        return self._walk(root, ((st.st_dev, st.st_ino),))

    def _walk(self, folder: str, parents: tuple[tuple[int, int], ...]) -> Iterator[ObjectInfo]:
        entries: list[tuple[str, str, os.stat_result]] = []
        with os.scandir(folder) as it:
            for entry in it:
                try:
                    st = entry.stat()  # follows symlinks
                except FileNotFoundError:
                    logger.warning("skipping %s: a broken symlink", entry.path)
                    continue
                key = entry.name + "/" if stat.S_ISDIR(st.st_mode) else entry.name
                entries.append((key, entry.path, st))
        entries.sort(key=lambda e: e[0])
        for _key, path, st in entries:
            if stat.S_ISDIR(st.st_mode):
                node = (st.st_dev, st.st_ino)
                if node in parents:
                    logger.warning("skipping %s: a symlink loop back to %s", path, folder)
                    continue
                yield from self._walk(path, (*parents, node))
            elif stat.S_ISREG(st.st_mode):
                yield _info(path, st)

    def open(
        self, path: str, *, block_size: int = DEFAULT_BLOCK_SIZE, size: int | None = None
    ) -> BinaryIO:
        return open(path, "rb", buffering=block_size)

    def read(self, path: str, max_bytes: int) -> bytes:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes:
                raise ObjectSizeError(_too_large(path, size, max_bytes))
            data = f.read(max_bytes + 1)  # the file may have grown since the stat
        if len(data) > max_bytes:
            raise ObjectSizeError(_too_large(path, len(data), max_bytes))
        return data

    def read_range(self, path: str, offset: int, size: int) -> bytes:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(size)
        if len(data) != size:
            raise ObjectSizeError(_short(path, offset, size, len(data)))
        return data

    def write(self, path: str, data: bytes) -> str:
        tmp = self._write_tmp(path, data)
        os.replace(tmp, path)
        return _tag(os.stat(path))

    def upload(self, path: str, local_file: str | os.PathLike[str]) -> None:
        tmp = _tmp_name(path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        try:
            shutil.copyfile(local_file, tmp)
            _fsync(tmp)
            os.replace(tmp, path)
        except BaseException:
            _remove(tmp)
            raise

    def delete(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def create(self, path: str, data: bytes) -> str:
        tmp = self._write_tmp(path, data)
        try:
            os.link(tmp, path)  # atomic; fails if the name exists
        except FileExistsError:
            if _holds(path, data):
                return _tag(os.stat(path))
            raise FileExistsError(f"{path}: already exists") from None
        finally:
            _remove(tmp)
        return _tag(os.stat(path))

    def replace(self, path: str, data: bytes, *, if_match: str) -> str:
        current = _tag(os.stat(path))
        if current != if_match:
            raise PreconditionFailedError(f"{path}: changed since it was read")
        return self.write(path, data)

    def check_access(self, path: str) -> None:
        # The nearest folder that exists must be usable: an output folder may not exist yet.
        probe = path.rstrip("/") or "/"
        while not os.path.exists(probe) and os.path.dirname(probe) != probe:
            probe = os.path.dirname(probe)
        if os.path.isdir(probe) and not os.access(probe, os.R_OK | os.X_OK):
            raise StorageAccessError(f"{path}: permission denied on the folder {probe}")
        if not os.path.isdir(probe) and not os.access(probe, os.R_OK):
            raise StorageAccessError(f"{path}: permission denied")

    def _write_tmp(self, path: str, data: bytes) -> str:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        tmp = _tmp_name(path)
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            _remove(tmp)
            raise
        return tmp


def _tmp_name(path: str) -> str:
    folder, name = os.path.split(path)
    # Hidden and unique: concurrent writers of one name never share a temporary file.
    return os.path.join(folder, f".{name}.{uuid.uuid4().hex[:12]}.tmp")


def _fsync(path: str) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _holds(path: str, data: bytes) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(data) + 1) == data
    except OSError:
        return False


def _too_large(uri: str, size: int, max_bytes: int) -> str:
    return f"{uri}: too large: {size:,} bytes, over the limit of {max_bytes:,}"


def _short(uri: str, offset: int, size: int, got: int) -> str:
    return f"{uri}: truncated: {size:,} bytes wanted at offset {offset:,}, only {got:,} there"
