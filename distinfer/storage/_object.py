"""Object storage (S3 and compatibles, GCS, Azure, HTTP) through obstore.

An :class:`ObjectFileSystem` is ``(scheme, bucket, options)`` and nothing else:
its obstore store is built on first use, in the process that uses it, from that
process's environment. Pickling it sends those three values only, so a location
sent to an actor on another node uses that node's credentials, and no secret
ever travels. Each process keeps one instance per ``(scheme, bucket, options)``
and credential environment.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .._errors import ObjectSizeError, PreconditionFailedError, StorageError
from ._filesystem import DEFAULT_BLOCK_SIZE, ObjectInfo
from ._options import StorageOptions
from ._reader import RangedReader
from ._store import (
    INITIAL_BACKOFF_S,
    METADATA_CONNECT_TIMEOUT_S,
    build_store,
    env_fingerprint,
    instance_role_only,
    unreachable,
)
from ._translate import access_error, classify, no_credentials_error, translate

if TYPE_CHECKING:
    from obstore.store import ObjectStore

logger = logging.getLogger(__name__)

_LIST_CHUNK = 1000  # S3 and GCS pages hold 1,000 keys: one page per chunk
_CONFLICT_RETRIES = 3  # S3 answers 409 to a conditional write racing another: retry it

_cache: dict[tuple[str, str, StorageOptions, str], ObjectFileSystem] = {}
_cache_lock = threading.Lock()


def object_filesystem(scheme: str, bucket: str, options: StorageOptions) -> ObjectFileSystem:
    """This process's filesystem for ``scheme://bucket`` (one per credential environment)."""
    key = (scheme, bucket, options, env_fingerprint())
    with _cache_lock:
        fs = _cache.get(key)
        if fs is None:
            fs = _cache[key] = ObjectFileSystem(scheme, bucket, options)
        return fs


class ObjectFileSystem:
    """One bucket (container, HTTP host) of an object store; paths are keys in it.

    ``scheme`` is ``s3``, ``gs``, ``az`` (``abfs``/``abfss`` URIs too) or
    ``http``/``https``. Use :func:`~distinfer.storage.resolve_location` rather than
    building one. See :class:`~distinfer.storage.FileSystem` for the operations.
    """

    def __init__(self, scheme: str, bucket: str, options: StorageOptions) -> None:
        if not bucket:
            raise ValueError("ObjectFileSystem bucket: expected a bucket name, got ''")
        self._scheme = scheme
        self._bucket = bucket
        self._options = options
        self._store: ObjectStore | None = None
        self._lock = threading.Lock()  # builds the store once when threads race to use it

    @property
    def scheme(self) -> str:
        return self._scheme

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def options(self) -> StorageOptions:
        return self._options

    def __reduce__(self) -> tuple[Any, ...]:
        return (object_filesystem, (self._scheme, self._bucket, self._options))

    def __repr__(self) -> str:
        return f"ObjectFileSystem({self._scheme!r}, {self._bucket!r}, {self._options!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ObjectFileSystem):
            return NotImplemented
        return (self._scheme, self._bucket, self._options) == (
            other._scheme,
            other._bucket,
            other._options,
        )

    def __hash__(self) -> int:
        return hash((self._scheme, self._bucket, self._options))

    def uri(self, path: str) -> str:
        return f"{self._scheme}://{self._bucket}/{path}"

    def _obstore(self) -> ObjectStore:
        with self._lock:
            if self._store is None:
                self._store = build_store(self._scheme, self._bucket, self._options)
            return self._store

    def info(self, path: str) -> ObjectInfo:
        import obstore

        try:
            meta = obstore.head(self._obstore(), path)
        except Exception as exc:  # translated: obstore raises several bases
            raise translate(exc, self.uri(path), "reading its size") from exc
        return _object_info(meta)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object below the folder ``prefix``, page by page as the store returns them.

        Folder marker objects (keys ending in ``/``, which obstore reports without
        the slash) are dropped when what follows them lies inside them.
        """
        import obstore

        folder = prefix.strip("/")
        uri = self.uri(folder + "/" if folder else "")
        try:
            stream = obstore.list(self._obstore(), folder or None, chunk_size=_LIST_CHUNK)
            held: ObjectInfo | None = None
            for chunk in stream:
                for meta in chunk:
                    info = _object_info(meta)
                    if held is not None and not (
                        held.size == 0 and info.path.startswith(held.path + "/")
                    ):
                        yield held
                    held = info
            if held is not None:
                yield held
        except StorageError:
            raise
        except Exception as exc:
            raise translate(exc, uri, "listing") from exc

    def open(
        self, path: str, *, block_size: int = DEFAULT_BLOCK_SIZE, size: int | None = None
    ) -> BinaryIO:
        """A seekable :class:`RangedReader`; one HEAD first unless ``size`` is given."""
        tag = None
        if size is None:
            info = self.info(path)
            size, tag = info.size, info.tag
        return RangedReader(self._fetcher(path, tag), size, self.uri(path), block_size)

    def _fetcher(self, path: str, tag: str | None) -> Any:
        import obstore

        store = self._obstore()
        uri = self.uri(path)

        def fetch(offset: int, length: int) -> Any:
            try:
                if tag is None:
                    data = obstore.get_range(store, path, start=offset, length=length)
                else:
                    result = obstore.get(
                        store, path, options={"range": (offset, offset + length), "if_match": tag}
                    )
                    data = result.bytes()
            except Exception as exc:
                raise translate(exc, uri, "being read") from exc
            if len(memoryview(data)) != length:
                raise ObjectSizeError(_short(uri, offset, length, len(memoryview(data))))
            return data

        return fetch

    def read(self, path: str, max_bytes: int) -> bytes:
        import obstore

        uri = self.uri(path)
        try:
            result = obstore.get(self._obstore(), path)
            size = result.meta["size"]
            if size > max_bytes:
                # The body is left unread: dropping the result closes the connection.
                raise ObjectSizeError(
                    f"{uri}: too large: {size:,} bytes, over the limit of {max_bytes:,}"
                )
            return result.bytes().to_bytes()
        except StorageError:
            raise
        except Exception as exc:
            raise translate(exc, uri, "reading it") from exc

    def read_range(self, path: str, offset: int, size: int) -> bytes:
        if size == 0:
            return b""
        data = self._fetcher(path, None)(offset, size)
        return bytes(data)

    def write(self, path: str, data: bytes) -> str | None:
        return self._put(path, data, None, "writing it")

    def upload(self, path: str, local_file: str | os.PathLike[str]) -> None:
        # obstore uploads a file over its chunk size in parts; the object appears
        # only when the upload completes.
        self._put(path, Path(local_file), None, "uploading it")

    def delete(self, path: str) -> None:
        import obstore

        try:
            obstore.delete(self._obstore(), path)
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise translate(exc, self.uri(path), "deleting it") from exc

    def create(self, path: str, data: bytes) -> str:
        try:
            return self._put(path, data, "create", "creating it") or ""
        except FileExistsError:
            tag = self._holds(path, data)
            if tag is None:
                raise
            logger.debug("%s: created by our own earlier attempt", self.uri(path))
            return tag

    def replace(self, path: str, data: bytes, *, if_match: str) -> str:
        try:
            return self._put(path, data, {"e_tag": if_match}, "replacing it") or ""
        except PreconditionFailedError:
            tag = self._holds(path, data)
            if tag is None:
                raise
            logger.debug("%s: replaced by our own earlier attempt", self.uri(path))
            return tag

    def _holds(self, path: str, data: bytes) -> str | None:
        """The object's tag if it holds exactly ``data``: our own write, whose answer
        was lost and whose retry then found it there."""
        import obstore

        try:
            result = obstore.get(self._obstore(), path)
            if result.meta["size"] != len(data):
                return None
            same = result.bytes().to_bytes() == data
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise translate(exc, self.uri(path), "checking a conditional write") from exc
        tag: str | None = result.meta["e_tag"]
        return tag if same and tag is not None else None

    def _put(self, path: str, data: Any, mode: Any, doing: str) -> str | None:
        import obstore

        uri = self.uri(path)
        for attempt in range(_CONFLICT_RETRIES + 1):
            try:
                result = obstore.put(self._obstore(), path, data, mode=mode)
            except Exception as exc:
                if classify(exc).kind == "conflict" and attempt < _CONFLICT_RETRIES:
                    time.sleep(INITIAL_BACKOFF_S * 2**attempt)
                    continue
                raise translate(exc, uri, doing) from exc
            tag: str | None = result["e_tag"]
            return tag
        raise AssertionError("unreachable")

    def check_access(self, path: str) -> None:
        """One LIST request below ``path`` (its bucket's root for a bucket); when listing
        is forbidden and ``path`` names an object, one HEAD of it instead. With no key
        but an instance role's to use, the instance metadata service must first take a
        connection within a second."""
        import obstore

        metadata = instance_role_only(self._scheme, self._options, os.environ)
        if metadata is not None:
            why = unreachable(metadata, METADATA_CONNECT_TIMEOUT_S)
            if why is not None:
                raise no_credentials_error(self.uri(path), f"instance metadata service: {why}")
        store = self._obstore()
        folder = path.strip("/")
        try:
            for _chunk in obstore.list(store, folder or None, chunk_size=1):
                break
            return
        except Exception as exc:  # noqa: BLE001  # classified below
            listing_failed = exc
        if classify(listing_failed).kind == "denied" and folder and not path.endswith("/"):
            try:
                obstore.head(store, folder)
                return
            except Exception:  # noqa: BLE001  # report why the listing failed
                pass
        raise access_error(listing_failed, self.uri(path)) from listing_failed


def _object_info(meta: Any) -> ObjectInfo:
    return ObjectInfo(
        path=meta["path"],
        size=meta["size"],
        tag=meta.get("e_tag"),
        mtime_s=meta["last_modified"].timestamp(),
    )


def _short(uri: str, offset: int, size: int, got: int) -> str:
    return f"{uri}: truncated: {size:,} bytes wanted at offset {offset:,}, only {got:,} there"
