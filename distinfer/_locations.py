"""Every place a run reads or writes, resolved once when the job file is loaded.

Each location key (``model.path``, ``input.images[i]``, ``input.videos[i]``,
``output.parquet``, ``output.video``, ``output.overlays``) becomes one
:class:`~distinfer.storage.Location`: a local path (relative ones against the
job file's folder) or a URI of object storage, with the job's ``storage:``
options. Everything downstream takes these values; nothing resolves a path again.

Checks, all before any Ray process starts, each failure a ``ConfigError`` naming
the key: :func:`check_local` (inputs and the model exist; no network) and
:func:`check_access` (each location on object storage answers one cheap request:
a missing bucket, refused credentials or denied access stop the run here; an
input that names nothing is found here too).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ._errors import ConfigError, StorageError, UnsupportedLocationError
from .sources._glob import has_magic, split
from .storage import Location, StorageOptions, lookup, resolve_location


@dataclass(frozen=True)
class Locations:
    """The resolved locations of one job, by config key."""

    model: Location | None
    images: tuple[Location, ...]
    videos: tuple[Location, ...]
    parquet: Location
    video: Location | None
    overlays: Location | None

    @classmethod
    def resolve(
        cls,
        *,
        model: str | None,
        images: Sequence[str],
        videos: Sequence[str],
        parquet: str,
        video: str | None,
        overlays: str | None,
        base_dir: str,
        options: StorageOptions,
    ) -> Locations:
        """Resolve what the job file wrote; ``ConfigError`` naming the key of a bad one."""

        def one(key: str, value: str) -> Location:
            try:
                return resolve_location(value, base_dir, options)
            except UnsupportedLocationError as exc:
                raise ConfigError(str(exc), key) from None

        return cls(
            model=one("model.path", model) if model is not None else None,
            images=tuple(one(f"input.images[{i}]", v) for i, v in enumerate(images)),
            videos=tuple(one(f"input.videos[{i}]", v) for i, v in enumerate(videos)),
            parquet=one("output.parquet", parquet),
            video=one("output.video", video) if video is not None else None,
            overlays=one("output.overlays", overlays) if overlays is not None else None,
        )

    def inputs(self) -> Iterator[tuple[str, Location]]:
        """``(key, location)`` of what the run reads: the model and the inputs."""
        if self.model is not None:
            yield "model.path", self.model
        yield from ((f"input.images[{i}]", loc) for i, loc in enumerate(self.images))
        yield from ((f"input.videos[{i}]", loc) for i, loc in enumerate(self.videos))

    def outputs(self) -> Iterator[tuple[str, Location]]:
        """``(key, location)`` of what the run writes."""
        yield "output.parquet", self.parquet
        if self.video is not None:
            yield "output.video", self.video
        if self.overlays is not None:
            yield "output.overlays", self.overlays

    def all(self) -> Iterator[tuple[str, Location]]:
        yield from self.inputs()
        yield from self.outputs()


def glob_base(location: Location) -> Location:
    """The folder a glob is matched below (the location itself when it is no glob)."""
    if not has_magic(location.path):
        return location
    base, _ = split(location.path)
    return Location(location.fs, (base or "/") if location.is_local else base + "/")


def check_local(locations: Locations) -> None:
    """Local inputs and the model must exist (a glob may match nothing); no network."""
    for key, location in locations.inputs():
        if not location.is_local or has_magic(location.path):
            continue
        if not os.path.exists(location.path):
            if key == "model.path":
                raise ConfigError(f"model file or folder {location.uri} does not exist", key)
            raise ConfigError(
                f"{location.uri} does not exist (give a folder, glob, archive, list or file)", key
            )


def check_access(locations: Locations) -> None:
    """One cheap request per location on object storage (an input that is no glob must
    also name something: one or two more); ``ConfigError`` naming the key, the URI and
    the cause: a missing bucket, refused credentials, denied access, no answer."""
    checks = [(key, loc, True) for key, loc in locations.inputs()]
    checks += [(key, loc, False) for key, loc in locations.outputs()]
    for key, location, is_input in checks:
        if location.is_local:
            continue
        probe = glob_base(location)
        try:
            probe.fs.check_access(probe.path)
            if is_input and probe is location and not _names_something(location):
                what = "below it" if location.is_prefix else "of that name, and none below it"
                raise ConfigError(f"{location.uri} does not exist (no object {what})", key)
        except (StorageError, OSError) as exc:
            raise ConfigError(str(exc), key) from None


def _names_something(location: Location) -> bool:
    """An object of that name, or objects below it (one HEAD, one page of a listing)."""
    info, below = lookup(location)
    return info is not None or next(below, None) is not None
