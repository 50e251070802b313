"""A seekable file object over an object store: every buffer refill is one ranged GET.

``tarfile`` (``r:`` reads 512-byte headers and seeks over member data),
``zipfile`` (seeks to the central directory at the end) and PyAV (demuxes by
seeking) then fetch only what they touch, never the whole object.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from ._filesystem import ReadStats

# One request at most this large: a read of a whole big object becomes several
# GETs, each well within a request timeout.
_MAX_REQUEST_BYTES = 32 << 20


class _RangedRaw(io.RawIOBase):
    """Unbuffered: ``readinto`` fetches exactly the bytes asked for (up to the end)."""

    def __init__(self, fetch: Callable[[int, int], Any], size: int, name: str) -> None:
        super().__init__()
        self._fetch = fetch
        self._size = size
        self._pos = 0
        self.name = name
        self.stats = ReadStats()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if self.closed:
            raise ValueError("seek on a closed reader")
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError(f"whence: expected 0, 1 or 2, got {whence}")
        if pos < 0:
            raise OSError(f"{self.name}: negative seek position {pos}")
        self._pos = pos
        return pos

    def readinto(self, buffer: Any) -> int:
        if self.closed:
            raise ValueError("read from a closed reader")
        view = memoryview(buffer).cast("B")
        n = min(len(view), self._size - self._pos, _MAX_REQUEST_BYTES)
        if n <= 0:
            return 0
        data = memoryview(self._fetch(self._pos, n)).cast("B")
        got = len(data)
        view[:got] = data
        self.stats.requests += 1
        self.stats.bytes += got
        self._pos += got
        return got

    def readall(self) -> bytes:
        # RawIOBase's own readall reads 8 KiB at a time: one request each.
        chunks = []
        while self._pos < self._size:
            n = min(self._size - self._pos, _MAX_REQUEST_BYTES)
            chunk = bytearray(n)
            got = self.readinto(chunk)
            if not got:
                break
            chunks.append(bytes(chunk[:got]))
        return b"".join(chunks)


class RangedReader(io.BufferedReader):
    """A buffered, seekable reader of one object; ``stats`` counts its GETs and bytes.

    Built by ``FileSystem.open`` on object storage. A read of up to ``block_size``
    bytes costs one ranged GET of ``block_size``; a larger read, one GET of its size;
    a seek costs nothing. When the object's tag is known, every GET asks for that
    version (``If-Match``), so an object replaced mid-read fails with
    ``PreconditionFailedError`` instead of mixing two versions.

    >>> with fs.open("videos/a.mp4", block_size=1 << 20) as f:  # doctest: +SKIP
    ...     f.seek(0, 2)
    1073741824
    """

    def __init__(
        self, fetch: Callable[[int, int], Any], size: int, name: str, block_size: int
    ) -> None:
        if block_size < 1:
            raise ValueError(f"block_size: expected >= 1 byte, got {block_size}")
        super().__init__(_RangedRaw(fetch, size, name), buffer_size=block_size)
        self._stats = self.raw.stats  # type: ignore[attr-defined]  # our _RangedRaw
        self._size = size

    @property
    def stats(self) -> ReadStats:
        """Requests made and bytes fetched so far."""
        stats: ReadStats = self._stats
        return stats

    @property
    def size(self) -> int:
        """The object's size in bytes."""
        return self._size
