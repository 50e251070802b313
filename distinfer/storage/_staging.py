"""Writing a file that a library can only write to a local path (an encoder, say)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ._location import Location


@contextmanager
def staged(location: Location) -> Iterator[Path]:
    """The local path to write ``location`` through.

    On a local disk: the location's own path. On object storage: a file in a fresh
    temporary folder, uploaded to ``location`` when the block ends without an error
    (in parts for a large file; the object appears only once the upload completes),
    and removed either way.

    >>> with staged(resolve_location("s3://b/annotated.mp4")) as path:  # doctest: +SKIP
    ...     encode_video(path)
    """
    if location.is_local:
        yield Path(location.path)
        return
    with tempfile.TemporaryDirectory(prefix="distinfer-upload-") as folder:
        path = Path(folder) / (location.name or "upload")
        yield path
        location.fs.upload(location.path, path)
