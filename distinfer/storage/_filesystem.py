"""The one interface readers and writers use, for a local disk and for object storage."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

DEFAULT_BLOCK_SIZE = 1 << 20  # one ranged GET per MiB read sequentially


@dataclass(frozen=True)
class ObjectInfo:
    """One file or object: where it is, its size, and a tag that changes when it does.

    ``path`` is what the filesystem's methods take: an absolute path on a local
    disk, a key inside the bucket on object storage. ``tag`` is the object's ETag
    (a local file's inode, mtime and size), ``None`` when the store gives none;
    ``mtime_s`` is seconds since the epoch, as the server stamped it.

    >>> ObjectInfo(path="pages/a.jpg", size=-1, tag=None, mtime_s=0.0)
    Traceback (most recent call last):
    ...
    ValueError: ObjectInfo size: expected >= 0, got -1
    """

    path: str
    size: int
    tag: str | None
    mtime_s: float

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError(f"ObjectInfo size: expected >= 0, got {self.size}")

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass
class ReadStats:
    """Requests made and bytes fetched by one ranged reader: proof of what a read cost."""

    requests: int = 0
    bytes: int = 0


class FileSystem(Protocol):
    """Where a :class:`~distinfer.storage.Location` lives: a local disk or an object store.

    Paths are the filesystem's own (see :class:`ObjectInfo`). A missing object
    raises ``FileNotFoundError``, a forbidden one ``PermissionError``, as on a local
    disk; a store that keeps failing after every retry raises
    ``StorageUnavailableError``.
    """

    @property
    def scheme(self) -> str:
        """``file`` for a local disk, else the URI scheme (``s3``, ``gs``, ...)."""
        ...

    def uri(self, path: str) -> str:
        """The URI naming ``path``: the absolute path itself on a local disk."""
        ...

    def info(self, path: str) -> ObjectInfo:
        """Size, tag and modification time of one object (one HEAD)."""
        ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object below the folder ``prefix``, lazily, in lexicographic order of
        the full path (``a.jpg`` before ``a/b.jpg``), page by page."""
        ...

    def open(
        self, path: str, *, block_size: int = DEFAULT_BLOCK_SIZE, size: int | None = None
    ) -> BinaryIO:
        """A seekable reader; on object storage every buffer refill is one ranged GET
        of ``block_size``, and a known ``size`` saves the HEAD that learns it."""
        ...

    def read(self, path: str, max_bytes: int) -> bytes:
        """The whole object; ``ObjectSizeError`` if it holds more than ``max_bytes``."""
        ...

    def read_range(self, path: str, offset: int, size: int) -> bytes:
        """Exactly ``size`` bytes from ``offset`` (one ranged GET); ``ObjectSizeError``
        if the object ends before."""
        ...

    def write(self, path: str, data: bytes) -> str | None:
        """Write a whole object, visible only once complete; return its new tag."""
        ...

    def upload(self, path: str, local_file: str | os.PathLike[str]) -> None:
        """Copy a (large) local file to ``path``, visible only once complete."""
        ...

    def delete(self, path: str) -> None:
        """Delete one object; a missing one is fine."""
        ...

    def create(self, path: str, data: bytes) -> str:
        """Write ``data`` only if nothing is at ``path``; return the new tag.

        Raises ``FileExistsError`` when something else is there. Holding exactly
        ``data`` counts as success (a retried create whose first answer was lost);
        callers that need to know they won put a unique token in ``data``.
        """
        ...

    def replace(self, path: str, data: bytes, *, if_match: str) -> str:
        """Overwrite ``path`` only if its tag is still ``if_match``; return the new tag.

        Raises ``PreconditionFailedError`` when the object changed, and
        ``FileNotFoundError`` when it is gone (S3 answers a missing key so). Holding
        exactly ``data`` already counts as success, as for :meth:`create`.
        """
        ...

    def check_access(self, path: str) -> None:
        """One cheap request proving ``path`` can be reached, or a
        ``StorageAccessError`` / ``StorageUnavailableError`` saying what to fix."""
        ...
