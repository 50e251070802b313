"""How to reach object storage: the ``storage:`` settings, without any secret."""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import urlsplit

_MAX_RETRY_TIMEOUT_S = 300.0  # retried requests are re-sent with their original signature


@dataclass(frozen=True)
class StorageOptions:
    """Settings shared by every object-store location of a run.

    Credentials are deliberately absent: each process reads its own from its
    environment, profile files or instance role when it first touches a store, so
    nothing secret is ever pickled to another node. ``endpoint``, ``region`` and
    ``anonymous`` override what the environment says.

    - ``endpoint``: an S3-compatible server (``http://`` allows plain HTTP), e.g. MinIO.
    - ``region``: the bucket's region, when the environment does not say.
    - ``anonymous``: send unsigned requests (public buckets); no credentials needed.
    - ``max_retries`` / ``retry_timeout_s``: how long a request is retried, with
      exponential backoff, on server errors, throttling and connection errors
      before it fails with ``StorageUnavailableError``.
    - ``lock_expiry_s``: how long an output lock on object storage survives
      without being renewed before another run may take it over.

    >>> StorageOptions(endpoint="http://127.0.0.1:9000").anonymous
    False
    >>> StorageOptions(max_retries=-1)
    Traceback (most recent call last):
    ...
    ValueError: storage max_retries: expected an integer >= 0, got -1
    """

    endpoint: str | None = None
    region: str | None = None
    anonymous: bool = False
    max_retries: int = 10
    retry_timeout_s: float = 120.0
    lock_expiry_s: float = 60.0

    def __post_init__(self) -> None:
        if self.endpoint is not None and not self.endpoint.startswith(("http://", "https://")):
            raise ValueError(
                f"storage endpoint: expected an http:// or https:// URL, got {self.endpoint!r}"
            )
        if self.endpoint is not None and "@" in urlsplit(self.endpoint).netloc:
            raise ValueError(
                "storage endpoint: credentials do not belong in the endpoint URL; "
                "set them in each node's environment"
            )
        if self.region is not None and not self.region.strip():
            raise ValueError("storage region: expected a region name, got an empty string")
        if not isinstance(self.anonymous, bool):
            raise ValueError(f"storage anonymous: expected true or false, got {self.anonymous!r}")
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise ValueError(f"storage max_retries: expected an integer, got {self.max_retries!r}")
        if self.max_retries < 0:
            raise ValueError(
                f"storage max_retries: expected an integer >= 0, got {self.max_retries}"
            )
        if not 0 < self.retry_timeout_s <= _MAX_RETRY_TIMEOUT_S:
            raise ValueError(
                f"storage retry_timeout_s: expected seconds in (0, {_MAX_RETRY_TIMEOUT_S:g}], "
                f"got {self.retry_timeout_s!r}"
            )
        if not (math.isfinite(self.lock_expiry_s) and self.lock_expiry_s > 0):
            raise ValueError(
                f"storage lock_expiry_s: expected seconds > 0, got {self.lock_expiry_s!r}"
            )
