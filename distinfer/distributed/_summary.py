"""What a run did, as the driver reports it: ``RunSummary``, and the progress callback's type."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

NodeEventKind = Literal["started", "joined", "left"]


@dataclass(frozen=True)
class NodeEvent:
    """A node the run started on, one that joined while it ran, or one it lost.

    ``node`` is the node's id as actor names show it (its first 12 hex digits),
    ``at_s`` the seconds since the actors were first placed, ``actors`` how many
    actors the node has (joined: the ones that started; left: the ones lost).
    """

    node: str
    event: NodeEventKind
    at_s: float
    actors: int


@dataclass
class RunSummary:
    """What a run did; ``errors`` > 0 makes ``distinfer run`` exit with 1.

    ``nodes`` maps each actor's name to its ``items``, ``errors`` and ``busy_s``;
    ``node_events`` says which nodes the run started on, joined and lost, in order.
    """

    total: int = 0
    processed: int = 0
    errors: int = 0
    resumed_from: int = 0
    elapsed_s: float = 0.0
    aborted: str | None = None
    nodes: dict[str, dict[str, float]] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)
    items_per_unit: int = 0  # images per unit at the end (``items_per_unit: auto`` adapts)
    finished: bool = False  # the run has ended (every item done, or aborted)
    node_events: list[NodeEvent] = field(default_factory=list)
    metrics_endpoints: list[str] = field(default_factory=list)  # with ``cluster.metrics``

    @property
    def items_per_s(self) -> float:
        return self.processed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def node_count(self) -> int:
        """Nodes the run has used: those it started on and those that joined."""
        return sum(1 for e in self.node_events if e.event != "left")

    @property
    def joined(self) -> int:
        return sum(1 for e in self.node_events if e.event == "joined")

    @property
    def left(self) -> int:
        return sum(1 for e in self.node_events if e.event == "left")

    def describe_nodes(self) -> str:
        """``2 (1 joined)``, ``3 (1 joined, 1 left)``, or ``1``.

        >>> RunSummary(node_events=[NodeEvent("a", "started", 0.0, 1),
        ...                         NodeEvent("b", "joined", 9.5, 1)]).describe_nodes()
        '2 (1 joined)'
        """
        changes = [f"{n} {what}" for n, what in ((self.joined, "joined"), (self.left, "left")) if n]
        return f"{self.node_count}" + (f" ({', '.join(changes)})" if changes else "")

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data (``distinfer run --stats-json``); no manifest."""
        return {
            "finished": self.finished,
            "total": self.total,
            "processed": self.processed,
            "errors": self.errors,
            "resumed_from": self.resumed_from,
            "elapsed_s": round(self.elapsed_s, 3),
            "items_per_s": round(self.items_per_s, 3),
            "aborted": self.aborted,
            "items_per_unit": self.items_per_unit,
            "node_count": self.node_count,
            "nodes_joined": self.joined,
            "nodes_left": self.left,
            "nodes": self.nodes,
            "node_events": [dataclasses.asdict(e) for e in self.node_events],
            "error_samples": self.error_samples,
            "metrics_endpoints": self.metrics_endpoints,
        }


def write_json(path: str | Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` to ``path`` as JSON, whole or not at all (temporary file, rename)."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


#: Called as the run goes with the live summary and the total (None until it is known).
ProgressFn = Callable[[RunSummary, int | None], None]
