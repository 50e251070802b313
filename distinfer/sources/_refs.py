"""Image references: what enumeration yields and a worker reads, and safe relative names."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field

from distinfer._errors import InputError
from distinfer.storage import FileSystem, LocalFileSystem

#: File name extensions taken as images in folders, globs and archives.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})
#: Default cap on the bytes of one image file (and of members carried inline).
DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")
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

    ``path`` is a path of ``fs``: an absolute path on a local disk (the default),
    a key on object storage. ``source`` is the display name (a path or URI, or
    ``"archive!member"``) and ``relpath`` a safe relative path (no ``..``, never
    absolute) for naming output files.

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
    fs: FileSystem = field(default=LocalFileSystem(), repr=False)

    def __post_init__(self) -> None:
        if self.offset is not None and (self.offset < 0 or self.size is None):
            raise ValueError(f"offset {self.offset} needs a size and must be >= 0")
        if self.size is not None and self.size < 0:
            raise ValueError(f"size must be >= 0, got {self.size}")
        if self.data is not None and self.offset is not None:
            raise ValueError("give either inline data or a byte range, not both")


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


def _check_size(size: int, max_bytes: int, source: str) -> None:
    if size > max_bytes:
        raise InputError(
            f"too large: {source} has {size:,} bytes, over the limit of {max_bytes:,} "
            f"(raise {_MAX_FILE_BYTES_KEY} to accept it)"
        )


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


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
