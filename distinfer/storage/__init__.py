"""Where inputs and outputs live: local disks and object storage, behind one interface.

A :class:`Location` is a filesystem and a path in it, resolved once from what a
user wrote (``/data/pages``, ``s3://bucket/pages/``, ``gs://...``); every reader
and writer takes one, so a local disk and a bucket are one code path::

    from distinfer.storage import StorageOptions, resolve_location

    pages = resolve_location("s3://scans/pages/", base_dir=".", options=StorageOptions())
    for info in pages.fs.list(pages.path):            # lazily, page by page
        with pages.fs.open(info.path) as f:           # ranged GETs
            header = f.read(512)

obstore, the object-store client, is imported when a remote location is first
used, not when this package is.
"""

from .._errors import (
    ObjectSizeError,
    PreconditionFailedError,
    StorageAccessError,
    StorageError,
    StorageUnavailableError,
    UnsupportedLocationError,
)
from ._filesystem import DEFAULT_BLOCK_SIZE, FileSystem, ObjectInfo, ReadStats
from ._local import LocalFileSystem
from ._location import Location, lookup, resolve_location
from ._lock import Lease, LockFence, output_lock
from ._models import fetch_model
from ._object import ObjectFileSystem
from ._options import StorageOptions
from ._reader import RangedReader
from ._staging import staged

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "FileSystem",
    "Lease",
    "LocalFileSystem",
    "Location",
    "LockFence",
    "ObjectFileSystem",
    "ObjectInfo",
    "ObjectSizeError",
    "PreconditionFailedError",
    "RangedReader",
    "ReadStats",
    "StorageAccessError",
    "StorageError",
    "StorageOptions",
    "StorageUnavailableError",
    "UnsupportedLocationError",
    "fetch_model",
    "lookup",
    "output_lock",
    "resolve_location",
    "staged",
]
