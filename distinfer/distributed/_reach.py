"""Local paths in a run on a cluster: every node must see them, checked before any work.

A local path is fine on a cluster when it names a filesystem mounted at the same
path on every node (NFS, Lustre, a FUSE mount). Before dispatch, one tiny task
on each node looks for the local input roots, the model, and what the driver
has just created: the output folder's ``_lock`` and the overlays folder. A node
that does not see one stops the run (exit 2) before any item is processed,
instead of every item on it becoming an error row.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from .._errors import ConfigError
from .._locations import Locations, glob_base
from ..storage._lock import LOCK_NAME

logger = logging.getLogger(__name__)

#: How long a node may take to answer the check (a node busy starting workers).
REACH_TIMEOUT_S = 60.0


def local_paths(locations: Locations) -> list[tuple[str, str]]:
    """``(key, path)`` of the local paths every node needs to see."""
    paths = [(k, glob_base(loc).path) for k, loc in locations.inputs() if loc.is_local]
    if locations.parquet.is_local:
        paths.append(("output.parquet", locations.parquet.join(LOCK_NAME).path))
    if locations.overlays is not None and locations.overlays.is_local:
        paths.append(("output.overlays", locations.overlays.path))
    return paths


def missing(paths: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The ``(key, path)`` of ``paths`` that this node cannot see (runs on each node)."""
    return [(key, path) for key, path in paths if not os.path.exists(path)]


def check_nodes_reach(ray: Any, locations: Locations) -> None:
    """Raise ``ConfigError`` naming the first node, key and path a node cannot see."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    paths = local_paths(locations)
    if not paths:
        return
    task = ray.remote(missing)
    asked = {}
    for node in ray.nodes():
        if node.get("Alive") and node.get("Resources", {}).get("CPU", 0) > 0:
            strategy = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            on_node = task.options(num_cpus=0, max_retries=0, scheduling_strategy=strategy)
            asked[node["NodeID"]] = (node, on_node.remote(paths))
    for node_id, (node, ref) in asked.items():
        try:
            unseen = ray.get(ref, timeout=REACH_TIMEOUT_S)
        except ray.exceptions.RayError as exc:  # gone, or too slow: no actor goes there either
            logger.warning("node %s could not check the local paths: %s", node_id[:12], exc)
            continue
        if unseen:
            key, path = unseen[0]
            raise ConfigError(
                f"node {node_id[:12]} ({node.get('NodeManagerAddress', '?')}) cannot see "
                f"{path}: a local path in a run on several nodes must name a filesystem "
                "mounted at that same path on every node; use a URI every node can reach "
                "(s3://...) or a shared filesystem",
                key,
            )
