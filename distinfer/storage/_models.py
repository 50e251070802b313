"""Models on object storage: fetched once per node into a local cache, then read from disk.

OpenVINO and the model readers take local files, so a model at a URI is copied to
``$XDG_CACHE_HOME/distinfer/models/<digest>/`` (``~/.cache/...`` by default). The
digest covers the URI and each object's size and tag (ETag), so a changed model is
fetched again and an unchanged one never is: every actor that starts on a node
after the first finds the copy. A file lock beside it makes the processes of one
node that start together fetch once, not once each.

What is fetched: a model file and the files it needs beside it (``.xml`` its
``.bin``, ``.pdmodel`` its ``.pdiparams`` when there is one), or every object
below a deployment folder (a prefix). Old copies stay until removed by hand.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import uuid
from pathlib import Path

from .._errors import ModelError
from ._filesystem import ObjectInfo
from ._location import Location, lookup

logger = logging.getLogger(__name__)

#: Files a model file needs beside it (same stem): required, optional.
COMPANIONS = {".xml": ((".bin",), ()), ".pdmodel": ((), (".pdiparams",))}
_COPY_BLOCK = 8 << 20


def cache_dir() -> Path:
    """Where fetched models are kept on this node."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "distinfer" / "models"


def fetch_model(location: Location) -> Path:
    """The local path of the model at ``location``: itself on a local disk, else the
    node's cached copy, fetched first if this node has none of this version.

    Raises ``ModelError`` when nothing is there.

    >>> fetch_model(resolve_location("s3://models/det/model.xml"))  # doctest: +SKIP
    PosixPath('/home/me/.cache/distinfer/models/3f1c.../model.xml')
    """
    if location.is_local:
        return Path(location.path)
    objects, main = _objects(location)
    identity = [location.uri] + [f"{name}\0{info.size}\0{info.tag}" for name, info in objects]
    digest = hashlib.sha256("\n".join(identity).encode()).hexdigest()[:32]
    root = cache_dir()
    folder = root / digest
    target = folder / main if main else folder
    if folder.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one fetch per node; the others wait, then find it
        if not folder.is_dir():
            _fetch(location, objects, root, folder)
    return target


def _objects(location: Location) -> tuple[list[tuple[str, ObjectInfo]], str]:
    """``([(name in the copy, object)], name of the model file or "" for a folder)``."""
    main, below = lookup(location)
    if main is not None:
        return [(location.name, main), *_companions(location)], location.name
    prefix = location.path.strip("/")
    cut = len(prefix) + 1 if prefix else 0
    listed = [(info.path[cut:], info) for info in below]
    if not listed:
        raise ModelError(f"{location.uri}: no model there (no object, and none below it)")
    return listed, ""


def _companions(location: Location) -> list[tuple[str, ObjectInfo]]:
    stem = location.stem
    required, optional = COMPANIONS.get(location.suffix.lower(), ((), ()))
    found = []
    for suffix in (*required, *optional):
        companion = location.parent.join(stem + suffix)
        try:
            found.append((companion.name, companion.fs.info(companion.path)))
        except FileNotFoundError:
            if suffix in required:
                raise ModelError(
                    f"{location.uri}: its weights {companion.uri} are missing"
                ) from None
    return found


def _fetch(
    location: Location, objects: list[tuple[str, ObjectInfo]], root: Path, folder: Path
) -> None:
    tmp = root / f".{folder.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        for name, info in objects:
            path = tmp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            with (
                location.fs.open(info.path, block_size=_COPY_BLOCK) as src,
                open(path, "wb") as dst,
            ):
                shutil.copyfileobj(src, dst, _COPY_BLOCK)
        os.rename(tmp, folder)  # the copy appears whole
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("fetched the model %s into %s", location.uri, folder)
