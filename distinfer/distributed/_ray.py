"""Connecting to Ray: an embedded local instance on loopback, or an existing cluster."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger(__name__)

# Measured with Ray 2.60: with the first set before ray is imported, a local
# instance binds GCS, raylet and workers to 127.0.0.1 instead of the host's IP.
# Token authentication is Ray's default for a local instance; saying so
# explicitly also makes its dashboard (when enabled) demand the token, which a
# head started without RAY_AUTH_MODE=token does not (measured: 200 without one).
# A user's own RAY_AUTH_MODE is left as it is.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token"}


def use_loopback() -> None:
    """Keep a local Ray on 127.0.0.1 with token auth; call before ``import ray``."""
    for key, value in LOOPBACK_ENV.items():
        os.environ.setdefault(key, value)


@contextmanager
def ray_session(address: str | None, *, dashboard: bool = False) -> Iterator[Any]:
    """Yield the ``ray`` module connected to a cluster.

    ``address=None`` starts an embedded local instance (``address="local"``,
    never attaching to a stale cluster from Ray's temp dir), on loopback, with
    the dashboard off unless asked for; it is shut down on exit. Any other
    address (``"auto"``, ``"ray://head:10001"``) attaches. A session that is
    already initialised (tests, a Ray job's driver) is used as it is.
    """
    if address is None:
        use_loopback()
    import ray

    if ray.is_initialized():
        yield ray
        return
    if address is None:
        ray.init(
            address="local",
            include_dashboard=dashboard,
            dashboard_host="127.0.0.1",
            logging_level=logging.WARNING,
            log_to_driver=False,
            configure_logging=False,
        )
    else:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
