"""How many inference actors a node gets, and what each is given.

``cluster.actors_per_node: auto`` sizes each node from its CPUs as Ray counts
them (``auto_actors_per_node``); several actors on a node share its cores
(``actor_openvino_config``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: ``actors_per_node: auto``: one actor below this many cores, ...
AUTO_MIN_CORES = 8
#: ... then one actor per this many cores, ...
AUTO_CORES_PER_ACTOR = 4
#: ... and never more than this many on one node (not measured beyond 16 cores).
AUTO_MAX_ACTORS = 16


def auto_actors_per_node(cpus: float) -> int:
    """How many actors ``actors_per_node: auto`` puts on a node of ``cpus`` cores.

    One process cannot keep many cores busy: its host-side Python holds the GIL.
    On 16 cores (ppocr-det, see docs/cluster.md) one process reached 0.60-0.63 of
    the bare model's limit, 4 processes of 4 threads 0.825, 8 of 2 threads 0.852.
    On 2 cores one actor reaches 0.98.

    >>> [auto_actors_per_node(c) for c in (1, 2, 4, 7, 8, 12, 16, 32, 96)]
    [1, 1, 1, 1, 2, 3, 4, 8, 16]
    """
    cores = int(cpus)
    if cores < AUTO_MIN_CORES:
        return 1
    return min(AUTO_MAX_ACTORS, cores // AUTO_CORES_PER_ACTOR)


def actors_for(setting: int | str, cpus: float) -> int:
    """``cluster.actors_per_node`` for a node of ``cpus`` cores: a number, or ``auto``.

    >>> actors_for("auto", 16), actors_for(2, 16), actors_for("auto", 2)
    (4, 2, 1)
    """
    return auto_actors_per_node(cpus) if setting == "auto" else int(setting)


def actor_openvino_config(
    config: Mapping[str, Any], actors_per_node: int, cpus: float
) -> dict[str, Any]:
    """The OpenVINO settings of each of ``actors_per_node`` actors on a node of ``cpus``.

    Several OpenVINO instances on one node each get their share of cores (Ray's
    OMP_NUM_THREADS does not limit OpenVINO's TBB pool), unpinned: OpenVINO pins
    its threads to cores by default, and every instance pins to the same first
    cores. Measured on 16 cores with ``benchmarks/actors_per_node.py`` (ppocr-det,
    the bare model's limit 287 fps): 4 processes of 4 threads ran 74 fps pinned
    and 237 unpinned; 2 of 8 threads 148 and 214; one process of 16 threads 179.
    Settings in ``config`` win.

    >>> actor_openvino_config({}, 4, 16)
    {'INFERENCE_NUM_THREADS': 4, 'ENABLE_CPU_PINNING': False}
    >>> actor_openvino_config({"ENABLE_CPU_PINNING": True}, 1, 16)
    {'ENABLE_CPU_PINNING': True}
    """
    openvino = dict(config)
    if actors_per_node > 1:
        openvino.setdefault("INFERENCE_NUM_THREADS", max(1, int(cpus / actors_per_node)))
        openvino.setdefault("ENABLE_CPU_PINNING", False)
    return openvino


def node_cpus(node: Mapping[str, Any]) -> float:
    """The CPUs Ray knows on a ``ray.nodes()`` entry; 0 when it is not alive."""
    if not node.get("Alive"):
        return 0.0
    return float(node.get("Resources", {}).get("CPU", 0))


def short_id(node_id: str) -> str:
    """A node's id as actor names and the summary show it: its first 12 hex digits."""
    return node_id[:12]
