"""A run's metrics through ``ray.util.metrics``, where Ray users already look.

Ray exports metrics recorded in actors and tasks, not in the driver
(ray#36813), so every series is recorded in an actor:

- each inference actor: items done and failed (counters) and the latency of
  each stage of its engine (a histogram: ``decode`` and each model stage),
  tagged with its ``node``;
- the collector: the committed index and the rows in its reorder buffer, and
  what the dispatch loop tells it every ``METRICS_INTERVAL_S``: items/s, units
  in flight, nodes and actors in use (gauges).

Every series is tagged with the ``run`` (the job's fingerprint, as the
manifest has it). Ray's exporter prefixes the names with ``ray_`` and adds
its own tags (``NodeAddress``, ``WorkerId``, ``SessionName``, ...). Each
node's agent serves them at ``http://NodeManagerAddress:MetricsExportPort/metrics``.
Nothing is recorded unless ``cluster.metrics`` is on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._summary import RunSummary

#: How often the dispatch loop tells the collector the run's gauges.
METRICS_INTERVAL_S = 2.0
#: Histogram buckets of stage latencies, in seconds.
LATENCY_BOUNDARIES_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0]

#: name -> description: the series this module records (Ray adds ``ray_`` in front).
SERIES = {
    "distinfer_items_done": "Items an inference actor finished (errors included)",
    "distinfer_items_failed": "Items an inference actor finished with an error row",
    "distinfer_stage_latency_s": "Latency of one engine stage call (decode, each model stage)",
    "distinfer_committed_index": "Items committed to the output, in index order",
    "distinfer_reorder_buffer_rows": "Rows the collector holds out of order",
    "distinfer_items_per_s": "Items finished per second over the last interval",
    "distinfer_units_in_flight": "Work units sent to actors and not yet answered",
    "distinfer_nodes": "Nodes the run has actors on",
    "distinfer_actors": "Inference actors receiving work",
}


class ActorMetrics:
    """An inference actor's counters and stage latencies; build it inside the actor.

    >>> metrics = ActorMetrics(run="3f2a9c0d1e2b4a5c", node="5f0c1d2e3a4b")  # doctest: +SKIP
    >>> metrics.stage("det", 0.021); metrics.unit_done(items=64, errors=1)    # doctest: +SKIP
    """

    def __init__(self, *, run: str, node: str) -> None:
        from ray.util.metrics import Counter, Histogram

        self.tags = {"run": run, "node": node}
        keys = ("run", "node")
        self.done = Counter("distinfer_items_done", SERIES["distinfer_items_done"], keys)
        self.failed = Counter("distinfer_items_failed", SERIES["distinfer_items_failed"], keys)
        self.latency = Histogram(
            "distinfer_stage_latency_s",
            SERIES["distinfer_stage_latency_s"],
            LATENCY_BOUNDARIES_S,
            (*keys, "stage"),
        )
        # one dict per stage, made once: observe() runs for every item
        self.stage_tags: dict[str, dict[str, str]] = {}

    def stage(self, stage: str, seconds: float) -> None:
        tags = self.stage_tags.get(stage)
        if tags is None:
            tags = self.stage_tags[stage] = {**self.tags, "stage": stage}
        self.latency.observe(seconds, tags)

    def unit_done(self, items: int, errors: int) -> None:
        if items:
            self.done.inc(items, self.tags)
        if errors:
            self.failed.inc(errors, self.tags)


@dataclass(frozen=True)
class RunGauges:
    """What the dispatch loop knows and the collector exports for it."""

    items_per_s: float
    units_in_flight: int
    nodes: int
    actors: int


class CollectorMetrics:
    """The collector's gauges; build it inside the collector."""

    def __init__(self, run: str) -> None:
        from ray.util.metrics import Gauge

        self.tags = {"run": run}
        self.gauges = {
            name: Gauge(name, SERIES[name], ("run",))
            for name in (
                "distinfer_committed_index",
                "distinfer_reorder_buffer_rows",
                "distinfer_items_per_s",
                "distinfer_units_in_flight",
                "distinfer_nodes",
                "distinfer_actors",
            )
        }

    def update(self, run: RunGauges, *, committed: int, buffered_rows: int) -> None:
        values = {
            "distinfer_committed_index": committed,
            "distinfer_reorder_buffer_rows": buffered_rows,
            "distinfer_items_per_s": run.items_per_s,
            "distinfer_units_in_flight": run.units_in_flight,
            "distinfer_nodes": run.nodes,
            "distinfer_actors": run.actors,
        }
        for name, value in values.items():
            self.gauges[name].set(value, self.tags)


class MetricsReporter:
    """The dispatch loop's side: every ``interval_s``, the gauges to the collector.

    The call is not waited for: the collector answers the next one as it does
    every other call, in order.
    """

    def __init__(
        self,
        collector: Any,
        run: str,
        *,
        interval_s: float = METRICS_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.collector = collector
        self.run = run
        self.interval_s = interval_s
        self.clock = clock
        self.last: tuple[float, int] | None = None  # (time, items processed) of the last report

    def tick(self, summary: RunSummary, *, units_in_flight: int, actors: int) -> None:
        """Report, if ``interval_s`` has passed since the last report."""
        now = self.clock()
        processed = summary.processed
        if self.last is not None and now - self.last[0] < self.interval_s:
            return
        then, before = self.last or (now, processed)
        rate = (processed - before) / (now - then) if now > then else 0.0
        self.last = (now, processed)
        nodes = summary.node_count - summary.left
        gauges = RunGauges(rate, units_in_flight, nodes, actors)
        self.collector.report.remote(self.run, gauges)
