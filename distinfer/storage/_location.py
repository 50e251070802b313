"""Where something is: a filesystem and a path in it, resolved once from what a user wrote."""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from .._errors import UnsupportedLocationError
from ._filesystem import FileSystem, ObjectInfo
from ._local import LocalFileSystem
from ._object import object_filesystem
from ._options import StorageOptions

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# URI scheme -> the scheme obstore knows it by (gcs:// is a common spelling of gs://).
_OBJECT_SCHEMES = {
    "s3": "s3",
    "gs": "gs",
    "gcs": "gs",
    "az": "az",
    "abfs": "abfs",
    "abfss": "abfss",
    "http": "http",
    "https": "https",
}
_HDFS_SCHEMES = frozenset({"hdfs", "viewfs", "webhdfs", "swebhdfs"})
_SUPPORTED = "local paths, file://, s3://, gs:// (gcs://), az://, abfs://, abfss://, http(s)://"
LOCAL = LocalFileSystem()


@dataclass(frozen=True)
class Location:
    """A place for data: its filesystem and its path there, resolved once.

    ``path`` is an absolute path on a local disk, or a key in the bucket on object
    storage (``""`` is the bucket itself). A trailing ``/`` is kept as written: it
    says the location is a folder (prefix), never one object. Pickling a location
    sends its scheme, bucket, options and path only: never a credential.

    >>> loc = resolve_location("s3://photos/2024/", base_dir="/tmp")
    >>> loc.uri, loc.path, loc.is_prefix
    ('s3://photos/2024/', '2024/', True)
    >>> str(loc.join("a.jpg")), loc.join("a.jpg").suffix, loc.join("a.tar.gz").stem
    ('s3://photos/2024/a.jpg', '.jpg', 'a.tar')
    """

    fs: FileSystem
    path: str

    def __post_init__(self) -> None:
        if self.is_local and not os.path.isabs(self.path):
            raise ValueError(f"Location path: expected an absolute local path, got {self.path!r}")
        if not self.is_local and self.path.startswith("/"):
            raise ValueError(
                f"Location path: expected a key without a leading /, got {self.path!r}"
            )

    @property
    def scheme(self) -> str:
        """``file`` for a local path, else the URI's scheme (``s3``, ``gs``, ...)."""
        return self.fs.scheme

    @property
    def is_local(self) -> bool:
        return self.fs.scheme == "file"

    @property
    def uri(self) -> str:
        """``s3://bucket/key``, or the absolute path for a local location."""
        return self.fs.uri(self.path)

    @property
    def is_prefix(self) -> bool:
        """Written with a trailing ``/`` (or the bucket itself): a folder, not an object."""
        return self.path.endswith("/") or (not self.is_local and not self.path)

    @property
    def name(self) -> str:
        """The last part of the path (``""`` for a bucket or ``/``)."""
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        """The name's last extension, dot included (``.gz`` for ``a.tar.gz``), or ``""``."""
        name = self.name
        dot = name.rfind(".")
        return name[dot:] if 0 < dot < len(name) - 1 else ""

    @property
    def stem(self) -> str:
        """The name without its last extension (``a.tar`` for ``a.tar.gz``)."""
        suffix = self.suffix
        return self.name[: -len(suffix)] if suffix else self.name

    @property
    def parent(self) -> Location:
        """The folder holding this location (the bucket or ``/`` for themselves)."""
        trimmed = self.path.rstrip("/")
        if self.is_local:
            return Location(self.fs, os.path.dirname(trimmed) or "/")
        return Location(self.fs, trimmed.rsplit("/", 1)[0] if "/" in trimmed else "")

    def join(self, *parts: str) -> Location:
        """The location of ``parts`` below this one (trusted relative names, ``/``-separated)."""
        path = self.path
        for part in parts:
            if not part:
                continue
            path = f"{path}{part}" if not path or path.endswith("/") else f"{path}/{part}"
        return Location(self.fs, path)

    def __str__(self) -> str:
        return self.uri


def lookup(location: Location) -> tuple[ObjectInfo | None, Iterator[ObjectInfo]]:
    """What ``location`` names: one object (its info, and an empty listing), or the
    objects below it (``None``, and a lazy listing). One HEAD, unless the location is
    written as a folder (a trailing ``/``); the listing asks for nothing until iterated.

    >>> info, below = lookup(resolve_location("s3://scans/pages"))  # doctest: +SKIP
    """
    if not location.is_prefix:
        try:
            return location.fs.info(location.path), iter(())
        except (FileNotFoundError, IsADirectoryError):
            pass
    return None, location.fs.list(location.path)


def resolve_location(
    value: str, base_dir: str | os.PathLike[str] = ".", options: StorageOptions | None = None
) -> Location:
    """Turn a path or URI as a user wrote it into a :class:`Location`.

    Plain paths and ``file://`` URIs become absolute, normalised local paths
    (relative ones against ``base_dir``, ``~`` expanded). ``s3://``, ``gs://``,
    ``gcs://``, ``az://``, ``abfs://``, ``abfss://``, ``http://`` and ``https://``
    become object-store locations using ``options``. Anything else, ``hdfs://``
    included, raises :class:`~distinfer.storage.UnsupportedLocationError` saying
    what to do instead. Nothing is contacted here.

    >>> resolve_location("data/../pages/", base_dir="/srv").uri
    '/srv/pages/'
    >>> resolve_location("hdfs://nn/data", base_dir="/srv")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    distinfer._errors.UnsupportedLocationError: hdfs://nn/data: HDFS is not supported ...
    """
    if not isinstance(value, str) or not value.strip():
        raise UnsupportedLocationError(f"expected a path or URI, got {value!r}")
    match = _SCHEME.match(value)
    if match is None:
        return _local(os.path.expanduser(value), base_dir, value)
    scheme = match.group(1).lower()
    rest = value[match.end() :]
    if scheme == "file":
        return _file_uri(value)
    if scheme in _HDFS_SCHEMES:
        raise UnsupportedLocationError(
            f"{value}: HDFS is not supported (the object-store library has no HDFS "
            "client); mount it on every node (an NFS gateway or FUSE) and give the "
            "local path, or reach it through an S3-compatible gateway with "
            "storage.endpoint"
        )
    if scheme not in _OBJECT_SCHEMES:
        raise UnsupportedLocationError(
            f"{value}: unsupported scheme {scheme!r}; supported are {_SUPPORTED}"
        )
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise UnsupportedLocationError(
            f"{value}: no bucket; expected {scheme}://bucket/key or {scheme}://bucket/prefix/"
        )
    if scheme in ("http", "https") and ("?" in key or "#" in key):
        # A signed URL carries a secret in its query, and a store key has no query.
        raise UnsupportedLocationError(
            f"{scheme}://{bucket}/...: query strings (signed URLs) are not supported; "
            "give the plain URL and let each node authenticate"
        )
    if "//" in key or any(part in (".", "..") for part in key.split("/")):
        raise UnsupportedLocationError(
            f"{value}: a key with an empty, '.' or '..' segment cannot be reached"
        )
    fs = object_filesystem(_OBJECT_SCHEMES[scheme], bucket, options or StorageOptions())
    return Location(fs, key)


def _local(path: str, base_dir: str | os.PathLike[str], written: str) -> Location:
    base = os.path.abspath(os.path.expanduser(os.fspath(base_dir)))
    absolute = os.path.normpath(os.path.join(base, path))
    if written.endswith(("/", os.sep)) and not absolute.endswith("/"):
        absolute += "/"
    return Location(LOCAL, absolute)


def _file_uri(value: str) -> Location:
    parts = urlsplit(value)
    if parts.netloc not in ("", "localhost"):
        raise UnsupportedLocationError(
            f"{value}: a file:// URI names a path on this machine: write file:///absolute/path"
        )
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise UnsupportedLocationError(f"{value}: expected file:///absolute/path")
    return _local(posixpath.normpath(path) + ("/" if path.endswith("/") else ""), "/", path)
