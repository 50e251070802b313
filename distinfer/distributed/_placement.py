"""Where the inference actors run: on the nodes there at the start, and on nodes that join.

Ray has no event for a node joining: ``Placement.poll`` reads ``ray.nodes()``
every ``NODE_POLL_INTERVAL_S`` and starts actors on each new alive node with
CPUs (``cluster.actors_per_node`` of them, up to ``cluster.max_nodes`` nodes).
A new actor compiles its model before it can work; it is handed to the
dispatcher only once its ``info()`` answers, so no unit waits behind a compile.
A node that leaves is reported, and its actors are dropped: the units they
held go back to the queue, as when an actor dies. With a ``check`` (a run on
a cluster with local paths: can the node see them?), a joining node is used
only once its check has passed too; one that fails it is left alone.

The actors placed at the start are handed over at once: every actor is
compiling then, and the first units may as well wait in them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._autoscale import Demand, ScaleRequests
from ._summary import NodeEvent, NodeEventKind

logger = logging.getLogger(__name__)

#: How often ``ray.nodes()`` is read for nodes that joined or left.
NODE_POLL_INTERVAL_S = 2.0
#: ... and how often while an actor is lost (its node may have left).
URGENT_POLL_INTERVAL_S = 0.5
#: How long an actor on a joining node may take to start (worker, imports, compile).
ACTOR_START_TIMEOUT_S = 300.0

#: ``actors_per_node: auto``: one actor below this many cores, ...
AUTO_MIN_CORES = 8
#: ... then one actor per this many cores, ...
AUTO_CORES_PER_ACTOR = 4
#: ... and never more than this many on one node (not measured beyond 16 cores).
AUTO_MAX_ACTORS = 16

#: ``spawn(node)``: start the actors of one ``ray.nodes()`` entry, by name.
Spawn = Callable[[Mapping[str, Any]], dict[str, Any]]
#: ``check(node)``: an ObjectRef of the ``(key, path)`` pairs of the run's local paths
#: that a joining node cannot see (empty: it sees them all), computed on that node.
Check = Callable[[Mapping[str, Any]], Any]


def auto_actors_per_node(cpus: float) -> int:
    """How many actors ``actors_per_node: auto`` puts on a node of ``cpus`` cores.

    On 16 cores (ppocr-det, see docs/cluster.md) one process reached 0.60-0.63 of
    the bare model's limit, 4 processes of 4 threads 0.825, 8 of 2 threads 0.852
    (why one process stops there is not profiled yet).
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


@dataclass
class _Joining:
    """The actors started on a node that joined, until each has answered ``info()``
    and the node's check (if any) has passed."""

    since: float
    actors: dict[str, Any]
    probes: dict[Any, str]  # ObjectRef of info() -> actor name
    check: Any = None  # ObjectRef of the node's check, until it answers
    ready: list[str] = field(default_factory=list)  # answered info()
    handed: list[str] = field(default_factory=list)  # given to the dispatcher


@dataclass
class Change:
    """What ``Placement.poll`` found: actors to give work to, actors to drop, events."""

    ready: dict[str, Any] = field(default_factory=dict)
    gone: list[str] = field(default_factory=list)
    events: list[NodeEvent] = field(default_factory=list)


class Placement:
    """The run's actors, node by node; see the module docstring.

    ``spawn`` starts the actors of one node; ``check`` (optional) says whether a
    joining node may be used; ``max_nodes`` caps the nodes in use at once (None:
    all). ``scale`` (runs attached to a cluster) is told the demand at
    each poll of the nodes.

    >>> placement = Placement(ray, spawn, max_nodes=None)   # doctest: +SKIP
    >>> actors = placement.start()          # every alive node now  # doctest: +SKIP
    >>> change = placement.poll()           # in the dispatch loop  # doctest: +SKIP
    """

    def __init__(
        self,
        ray: Any,
        spawn: Spawn,
        *,
        max_nodes: int | None,
        check: Check | None = None,
        scale: ScaleRequests | None = None,
        poll_interval_s: float = NODE_POLL_INTERVAL_S,
        start_timeout_s: float = ACTOR_START_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ray = ray
        self.spawn = spawn
        self.max_nodes = max_nodes
        self.check = check
        self.scale = scale
        self.poll_interval_s = poll_interval_s
        self.start_timeout_s = start_timeout_s
        self.clock = clock
        self.started_at = clock()
        self.next_poll = self.started_at + poll_interval_s
        self.last_read = self.started_at
        self.in_use: dict[str, list[str]] = {}  # node id -> its actors' names
        self.cpus: dict[str, float] = {}  # node id -> its CPUs, for nodes in use
        self.joining: dict[str, _Joining] = {}  # node id -> actors still starting
        self.passed_over: set[str] = set()  # nodes that left, or whose actors failed
        self.actors: dict[str, Any] = {}  # every actor started, for ``close``
        self._events: list[NodeEvent] = []  # not yet handed out by ``poll``

    # -- the nodes ----------------------------------------------------------------------

    def start(self) -> dict[str, Any]:
        """Actors on every alive node with CPUs now (up to ``max_nodes``), by name."""
        started: dict[str, Any] = {}
        for node in self.ray.nodes():
            if node_cpus(node) <= 0 or self._full():
                continue
            actors = self._spawn(node)
            self.in_use[node["NodeID"]] = list(actors)
            started.update(actors)
            self._event(node["NodeID"], "started", len(actors))
        return started

    def poll(self, demand: Demand | None = None, *, urgent: bool = False) -> Change:
        """Call from the dispatch loop: cheap except every ``poll_interval_s``, or
        every ``URGENT_POLL_INTERVAL_S`` while ``urgent`` (an actor was lost: its
        node may be gone)."""
        change = Change()
        if self.joining:
            self._check_joining(change)
        now = self.clock()
        interval = min(self.poll_interval_s, URGENT_POLL_INTERVAL_S) if urgent else None
        if now >= self.next_poll or (interval and now >= self.last_read + interval):
            self._read_nodes(change, now)
            if self.scale is not None and demand is not None:
                self.scale.update(self.node_count, self.largest_node_cpus, demand)
        change.events = self.take_events()
        return change

    def finish(self) -> Change:
        """At the end of the run: the nodes that left since the last poll (none started)."""
        change = Change()
        self._read_nodes(change, self.clock(), join=False)
        change.events = self.take_events()
        return change

    def take_events(self) -> list[NodeEvent]:
        """The node events since the last call (``start``'s, then ``poll``'s)."""
        events, self._events = self._events, []
        return events

    @property
    def starting(self) -> bool:
        """Whether actors on a joining node are still starting."""
        return bool(self.joining)

    @property
    def node_count(self) -> int:
        return len(self.in_use)

    @property
    def largest_node_cpus(self) -> float:
        return max(self.cpus.values(), default=0.0)

    def close(self) -> None:
        """End every actor this placement started (those still starting too)."""
        for actor in self.actors.values():
            self._kill(actor)
        self.actors.clear()
        self.joining.clear()

    # -- inside ----------------------------------------------------------------------------

    def _event(self, node_id: str, kind: NodeEventKind, actors: int) -> None:
        at_s = round(self.clock() - self.started_at, 3)
        self._events.append(NodeEvent(short_id(node_id), kind, at_s, actors))

    def _full(self) -> bool:
        return self.max_nodes is not None and len(self.in_use) >= self.max_nodes

    def _spawn(self, node: Mapping[str, Any]) -> dict[str, Any]:
        actors = self.spawn(node)
        self.actors.update(actors)
        self.cpus[node["NodeID"]] = node_cpus(node)
        return actors

    def _read_nodes(self, change: Change, now: float, *, join: bool = True) -> None:
        self.last_read, self.next_poll = now, now + self.poll_interval_s
        try:
            nodes = self.ray.nodes()
        except Exception:  # the GCS is busy or restarting: ask again next time
            logger.debug("ray.nodes() failed", exc_info=True)
            return
        alive = {n["NodeID"]: n for n in nodes if n.get("Alive")}
        for node_id in [n for n in self.in_use if n not in alive]:
            self._left(node_id, change)
        if not join:
            return
        for node_id, node in alive.items():
            if node_id in self.in_use or node_id in self.passed_over or node_cpus(node) <= 0:
                continue
            if self._full():
                break
            actors = self._spawn(node)
            self.in_use[node_id] = []
            self.joining[node_id] = _Joining(
                since=self.clock(),
                actors=actors,
                probes={actor.info.remote(): name for name, actor in actors.items()},
                check=self.check(node) if self.check is not None else None,
            )
            logger.info("node %s joined: starting %d actor(s)", short_id(node_id), len(actors))

    def _left(self, node_id: str, change: Change) -> None:
        names = self.in_use.pop(node_id)
        self.cpus.pop(node_id, None)
        self.passed_over.add(node_id)
        joining = self.joining.pop(node_id, None)
        if joining is not None:
            self._give_up(joining, "its node left")
            if not joining.handed:
                return  # never used: nothing to report
        change.gone.extend(names)
        logger.warning("node %s left: %d actor(s) lost", short_id(node_id), len(names))
        self._event(node_id, "left", len(names))

    def _check_joining(self, change: Change) -> None:
        refs = [
            ref
            for joining in self.joining.values()
            for ref in [*joining.probes, *([joining.check] if joining.check is not None else [])]
        ]
        answered = set(self.ray.wait(refs, num_returns=len(refs), timeout=0)[0])
        now = self.clock()
        for node_id, joining in list(self.joining.items()):
            if joining.check in answered and not self._passes(node_id, joining):
                continue
            for ref in [r for r in joining.probes if r in answered]:
                name = joining.probes.pop(ref)
                try:
                    self.ray.get(ref)
                except self.ray.exceptions.RayError as exc:  # it failed to start there
                    logger.warning("actor %s on joining node failed to start: %s", name, exc)
                    self._kill(joining.actors[name])
                    continue
                joining.ready.append(name)
            if now - joining.since > self.start_timeout_s:
                if joining.check is not None:
                    self._drop_node(node_id, joining, "its check did not answer in time")
                    continue
                self._give_up(joining, f"not started after {self.start_timeout_s:.0f} s")
            if joining.check is None:  # checked (or nothing to check): hand the ready out
                for name in joining.ready[len(joining.handed) :]:
                    joining.handed.append(name)
                    self.in_use[node_id].append(name)
                    change.ready[name] = joining.actors[name]
            if not joining.probes and joining.check is None:
                del self.joining[node_id]
                if joining.handed:
                    self._event(node_id, "joined", len(joining.handed))
                else:  # nothing started there: leave the node alone from now on
                    self.in_use.pop(node_id, None)
                    self.cpus.pop(node_id, None)
                    self.passed_over.add(node_id)

    def _passes(self, node_id: str, joining: _Joining) -> bool:
        """Whether the node's answered check let it be used (if not, it is dropped)."""
        try:
            unseen = self.ray.get(joining.check)
        except self.ray.exceptions.RayError as exc:
            self._drop_node(node_id, joining, f"its check of the local paths failed: {exc}")
            return False
        joining.check = None
        if unseen:
            key, path = unseen[0]
            self._drop_node(node_id, joining, f"it cannot see {path} ({key})")
            return False
        return True

    def _drop_node(self, node_id: str, joining: _Joining, why: str) -> None:
        """A joining node not to be used: its actors ended, the node left alone."""
        logger.warning("node %s joined but is not used: %s", short_id(node_id), why)
        for actor in joining.actors.values():
            self._kill(actor)
        del self.joining[node_id]
        self.in_use.pop(node_id, None)
        self.cpus.pop(node_id, None)
        self.passed_over.add(node_id)

    def _give_up(self, joining: _Joining, why: str) -> None:
        for name in joining.probes.values():
            logger.warning("actor %s given up: %s", name, why)
            self._kill(joining.actors[name])
        joining.probes.clear()

    def _kill(self, actor: Any) -> None:
        try:
            self.ray.kill(actor, no_restart=True)
        except Exception:  # gone already, with its node
            logger.debug("kill of an actor failed", exc_info=True)
