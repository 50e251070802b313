"""The exceptions distinfer raises.

Every error derives from ``DistinferError``; catch that to catch them all::

    DistinferError
    ├── ConfigError          bad configuration (the CLI exits with code 2)
    ├── ModelError           a model that cannot be found, read or compiled
    ├── InputError           one bad input (also a ValueError); costs only itself
    ├── InferenceError       failures collected from asynchronous items
    ├── WorkerError          a distributed worker failed
    │   └── ActorDiedError   an inference actor died and none is left to take over
    ├── OutputError          results cannot be written
    │   └── OutputExistsError  the output holds a finished or another job's run
    │                          (also a ConfigError: the CLI exits with code 2)
    └── StorageError         a file or object store could not do what was asked
        ├── UnsupportedLocationError  a URI scheme distinfer cannot reach (also a ValueError)
        ├── StorageAccessError        the location cannot be used as configured:
        │                             missing bucket, access denied, bad credentials
        ├── StorageUnavailableError   the store kept failing (5xx, throttling, network)
        │                             after every retry: not about one object
        ├── PreconditionFailedError   a conditional write lost: the object changed
        └── ObjectSizeError           an object larger than allowed, or shorter than
                                      the range read

A missing object or one that is not readable is not a ``StorageError``: the storage
layer raises the built-in ``FileNotFoundError`` / ``PermissionError`` for those, as a
local disk does, so callers handle both the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class DistinferError(Exception):
    """Root of all distinfer errors."""


class ConfigError(DistinferError):
    """Invalid configuration; ``key`` names the offending key path."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key


class ModelError(DistinferError):
    """A model that cannot be found, read, or compiled."""


class InputError(DistinferError, ValueError):
    """One bad input: unreadable bytes, wrong dtype, empty array, ..."""


class InferenceError(DistinferError):
    """One or more asynchronous items failed.

    ``failures`` holds ``(runtime_data, exception)`` pairs in completion order.
    """

    def __init__(self, failures: Sequence[tuple[Any, BaseException]]) -> None:
        self.failures = list(failures)
        first_data, first_exc = self.failures[0]
        more = f" (and {len(self.failures) - 1} more)" if len(self.failures) > 1 else ""
        super().__init__(
            f"item with runtime_data={first_data!r} failed: "
            f"{type(first_exc).__name__}: {first_exc}{more}"
        )


class WorkerError(DistinferError):
    """A distributed worker failed."""


class ActorDiedError(WorkerError):
    """Inference actors died and no survivor can take over the work."""


class OutputError(DistinferError):
    """Results cannot be written."""


class OutputExistsError(OutputError, ConfigError):
    """The output folder already holds a finished run, or another job's results.

    A usage problem rather than a failure, hence also a ``ConfigError``: pass
    ``--overwrite`` (``overwrite=True``) or choose another ``output.parquet``.
    """


class StorageError(DistinferError):
    """A file or object store could not do what was asked."""


class UnsupportedLocationError(StorageError, ValueError):
    """A location whose scheme distinfer cannot reach (``hdfs://``, a typo, ...)."""


class StorageAccessError(StorageError):
    """The location cannot be used as configured: its bucket is missing, access is
    denied, or the credentials are missing or wrong. Says what to do."""


class StorageUnavailableError(StorageError):
    """The store kept failing (server errors, throttling, connection errors) after
    every retry allowed by ``storage.max_retries`` / ``storage.retry_timeout_s``."""


class PreconditionFailedError(StorageError):
    """A conditional write lost: the object changed since its tag was read."""


class ObjectSizeError(StorageError):
    """An object larger than the caller allows, or shorter than the range it reads."""
