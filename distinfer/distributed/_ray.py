"""Connecting to Ray: an embedded local instance on loopback, or an existing cluster."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._errors import ConfigError

logger = logging.getLogger(__name__)

_KEY = "cluster.address"
#: How long a cluster address may take to accept a TCP connection.
CONNECT_TIMEOUT_S = 5.0

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


#: Ray's own switch for metrics export; when a user sets it, distinfer leaves it be.
METRICS_SWITCH = "RAY_enable_metrics_collection"


def embedded_options(*, metrics: bool, metrics_port: int | None) -> dict[str, Any]:
    """``ray.init`` options of an embedded instance for ``cluster.metrics``.

    Ray's metrics agent opens a Prometheus endpoint on every node, and Ray's
    processes export to it; an embedded run asks for neither unless
    ``cluster.metrics`` is on (or ``RAY_enable_metrics_collection`` says so): no
    port opened that nobody reads, and less of Ray's CPU per item. On, the
    endpoint is on 127.0.0.1 like every other port of the embedded instance.

    >>> embedded_options(metrics=True, metrics_port=9464)
    {'_metrics_export_port': 9464}
    """
    if metrics:
        return {"_metrics_export_port": metrics_port} if metrics_port is not None else {}
    if METRICS_SWITCH in os.environ:
        return {}
    return {"_system_config": {"enable_metrics_collection": False}}


@contextmanager
def ray_session(
    address: str | None,
    *,
    dashboard: bool = False,
    metrics: bool = False,
    metrics_port: int | None = None,
) -> Iterator[Any]:
    """Yield the ``ray`` module connected to a cluster.

    ``address=None`` starts an embedded local instance (``address="local"``,
    never attaching to a stale cluster from Ray's temp dir), on loopback, with
    the dashboard off unless asked for, and the metrics endpoint only with
    ``metrics`` (see ``embedded_options``); it is shut down on exit. Any other
    address (``"auto"``, ``"ray://head:10001"``) attaches: the cluster's own
    settings decide where its metrics go. A session that is already initialised
    (tests, a Ray job's driver) is used as it is.
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
            **embedded_options(metrics=metrics, metrics_port=metrics_port),
        )
    else:
        _attach(ray, address)
    try:
        yield ray
    finally:
        ray.shutdown()


def metrics_endpoints(ray: Any) -> list[str]:
    """Where each alive node serves its Prometheus metrics (none: metrics are off)."""
    endpoints = []
    for node in ray.nodes():
        port = node.get("MetricsExportPort") or 0
        if node.get("Alive") and port > 0:
            host = node["NodeManagerAddress"]
            host = f"[{host}]" if ":" in host else host
            endpoints.append(f"http://{host}:{port}/metrics")
    return endpoints


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``ray://host:port`` or ``host:port``; None for ``auto``."""
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def recorded_cluster() -> str | None:
    """What ``auto`` means: ``RAY_ADDRESS``, or the cluster the last ``ray start`` on
    this machine recorded (``ray_current_cluster`` in Ray's temp folder, as ``ray.init``
    documents it); None when there is neither.

    Ray's own ``auto`` also attaches to any Ray process it finds running on the
    machine, such as another program's embedded instance: never what is meant here.
    """
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    temp = os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()
    try:
        recorded = (Path(temp) / "ray" / "ray_current_cluster").read_text().strip()
    except OSError:
        return None
    return recorded or None


def _attach(ray: Any, address: str) -> None:
    """``ray.init`` on an existing cluster, failing in seconds with a clear message.

    Ray itself retries an address that does not answer for about a minute (a
    client address until its own timeout), then prints a traceback.
    """
    if address == "auto":
        found = recorded_cluster()
        if found is None:
            raise ConfigError(
                "no running Ray cluster found on this machine (auto means RAY_ADDRESS, or "
                "the cluster `ray start` last started here); start one, give the head's "
                "address, or remove cluster.address to run on an embedded local Ray",
                _KEY,
            )
        address = found
    where = _host_port(address)
    if where is None:
        raise ConfigError(
            f"{address!r} is not a Ray address: give auto, host:port (the head's GCS, "
            "6379 by default) or ray://host:port (Ray Client, 10001 by default)",
            _KEY,
        )
    try:
        socket.create_connection(where, timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ConfigError(
            f"nothing answers at {address} ({exc.strerror or exc}); check that the "
            "cluster is up (`ray status` on the head) and the address and port, or "
            "remove cluster.address to run on an embedded local Ray",
            _KEY,
        ) from None
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    except ConnectionError as exc:
        raise ConfigError(f"cannot connect to the Ray cluster at {address}: {exc}", _KEY) from None
