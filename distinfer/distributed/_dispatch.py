"""The scheduling loop of a run: credits per actor, the reorder window, and the
books that make the output exactly-once through actor and collector failures.

- Credits: each actor holds at most ``units_in_flight_per_actor`` units, so a
  faster actor frees credits sooner and gets more work.
- Window: a new unit is sent only if its first index is within
  ``reorder_buffer_items`` of the lowest unit not yet finished, which bounds
  the collector's reorder buffer.
- An inference actor that dies: its units in flight go back to the front of
  the queue and the actor is probed until Ray has restarted it, or it is
  given up (restarts spent, node gone, or not back within
  ``ACTOR_RESTART_TIMEOUT_S``). With no actor left the run fails with
  ``ActorDiedError``.
- Nodes that join or leave (``DispatchOptions.placement``): actors on a new
  node get credits once their model is compiled; actors of a node that left
  are dropped, their units in flight back to the queue.
- The collector that dies: Ray restarts it; it resumes at the manifest's
  ``committed_until`` under a new *epoch*. Every delivery (an actor's rows or
  the driver's own error rows) comes back with the epoch that took it, and
  is kept until it is committed; on a new epoch everything delivered above
  ``committed_until`` is delivered again. The collector drops duplicates.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import (
    ActorDiedError,
    DistinferError,
    WorkerError,
)
from ._autoscale import Demand
from ._failures import MAX_ATTEMPTS, Delivery, failed_rows, split, stops_the_run
from ._logs import WorkerLogs
from ._rows import ResultBatch, describe, error_row
from ._summary import ProgressFn, RunSummary
from ._work import CollectorStatus, ErrorItem, UnitDone, UnitSize, WorkItem, WorkUnit

if TYPE_CHECKING:
    from ._metrics import MetricsReporter
    from ._placement import Placement

logger = logging.getLogger(__name__)

#: How long a dead actor may take to come back before it is given up.
ACTOR_RESTART_TIMEOUT_S = 60.0
#: Pause between probes of an actor that Ray reports temporarily unavailable.
PROBE_INTERVAL_S = 0.5
WAIT_TIMEOUT_S = 0.5


@dataclass
class _Suspect:
    """An actor whose unit failed with the actor: alive again, or gone?"""

    since: float
    probe: Any = None  # an ObjectRef of ``info()``, or None until ``probe_at``
    probe_at: float = 0.0


class Abort(Exception):
    """Raised inside the loop when the error budget is spent."""


@dataclass(frozen=True)
class DispatchOptions:
    """How a dispatcher schedules: the ``cluster`` keys it obeys, and whom it tells.

    ``unit_size`` is told how fast items are done (``items_per_unit: auto``);
    ``progress`` is called with the live summary as the run goes; ``placement``
    is asked for nodes that joined or left; ``metrics`` is told the run's gauges.
    """

    units_in_flight_per_actor: int
    reorder_buffer_items: int
    unit_size: UnitSize
    max_error_fraction: float = 1.0
    resumed_from: int = 0
    progress: ProgressFn | None = None
    placement: Placement | None = None
    metrics: MetricsReporter | None = None


class Dispatcher:
    """Feeds ``units`` to ``actors`` until every index is committed; see the module doc."""

    def __init__(
        self,
        ray: Any,
        collector: Any,
        actors: Mapping[str, Any],
        units: Iterator[WorkItem],
        options: DispatchOptions,
    ) -> None:
        self.ray = ray
        self.collector = collector
        self.actors = dict(actors)  # its own copy: actors given up are dropped from it
        self.units = units
        self.options = options
        self.summary = RunSummary(resumed_from=options.resumed_from)
        self.worker_logs = WorkerLogs()
        self.retry: deque[WorkUnit] = deque()
        self.peeked: WorkUnit | None = None
        self.exhausted = False
        self.in_flight: dict[Any, tuple[str, WorkUnit]] = {}
        self.load = dict.fromkeys(self.actors, 0)
        self.suspects: dict[str, _Suspect] = {}
        self.attempts: dict[int, int] = {}
        self.open_heap: list[tuple[int, int]] = []  # (first index, unit id), lazily pruned
        self.open_ids: set[int] = set()
        self.unit_ids = itertools.count(10**12)  # ids for units made by splitting
        self.delivered: list[tuple[int, int, Delivery]] = []  # heap by end index
        self.delivery_ids = itertools.count()
        self.rows_to_resend: deque[Delivery] = deque()
        self.epoch = ""  # the collector instance that took the rows, learnt in ``run``
        self.committed_until = 0

    # -- the loop --------------------------------------------------------------------

    def run(self) -> RunSummary:
        """Dispatch everything, make sure the collector holds it all committed, and
        return the summary (``Abort`` when the error budget is spent)."""
        status: CollectorStatus = self.collector_call(self.collector.status.remote())
        self.epoch, self.committed_until = status.epoch, status.committed_until
        while True:
            self.dispatch()
            epoch, committed = self.collector_call(self.collector.flush.remote())
            if epoch == self.epoch:
                self.committed_until = committed
                return self.summary
            self.collector_restarted(epoch, committed)

    def dispatch(self) -> None:
        while True:
            self.resend_rows()
            self.fill()
            if not self.in_flight:
                if self.exhausted and not self.retry and self.peeked is None:
                    return  # (an actor still restarting is not waited for)
                if not self.actors and not (
                    self.options.placement and self.options.placement.starting
                ):
                    raise ActorDiedError(
                        "every inference actor died and none could be restarted; "
                        "check the actors' logs (`ray logs`) for the cause, then rerun "
                        "the same command to resume from what was committed"
                    )
            waiting = list(self.in_flight) + [s.probe for s in self.suspects.values() if s.probe]
            if waiting:
                ready, _ = self.ray.wait(waiting, num_returns=1, timeout=WAIT_TIMEOUT_S)
            else:  # only suspects waiting for their next probe
                ready = []
                time.sleep(PROBE_INTERVAL_S / 5)
            for ref in ready:
                if ref in self.in_flight:
                    self.on_unit_done(ref)
                else:
                    self.on_probe_done(ref)
            self.check_suspects()
            self.watch_cluster()
            if self.options.progress is not None:
                self.options.progress(self.summary, None)
            self.check_error_budget()

    # -- nodes that come and go --------------------------------------------------------

    def watch_cluster(self) -> None:
        """Nodes that joined or left (``placement``); the run's gauges (``metrics``)."""
        placement, metrics = self.options.placement, self.options.metrics
        if placement is not None:
            demand = Demand(self.summary.processed, self.saturated())
            change = placement.poll(demand, urgent=bool(self.suspects))
            for name in change.gone:
                self.drop_actor(name)
            for name, actor in change.ready.items():  # compiled: credits from now on
                self.actors[name], self.load[name] = actor, 0
            self.options.unit_size.set_actors(len(self.actors))
            self.summary.node_events.extend(change.events)
        if metrics is not None:
            metrics.tick(self.summary, units_in_flight=len(self.in_flight), actors=len(self.actors))

    def saturated(self) -> bool:
        """Every actor holds all the units it may, and more work waits."""
        limit = self.options.units_in_flight_per_actor
        if any(self.load[n] < limit for n in self.actors if n not in self.suspects):
            return False
        return bool(self.retry) or self.peeked is not None or not self.exhausted

    # -- the window ------------------------------------------------------------------

    def track(self, unit: WorkUnit) -> None:
        self.open_ids.add(unit.unit_id)
        heapq.heappush(self.open_heap, (unit.first_index, unit.unit_id))

    def low_index(self) -> int | None:
        while self.open_heap and self.open_heap[0][1] not in self.open_ids:
            heapq.heappop(self.open_heap)
        return self.open_heap[0][0] if self.open_heap else None

    def next_unit(self) -> WorkUnit | None:
        if self.retry:
            return self.retry.popleft()
        while self.peeked is None and not self.exhausted:
            item = next(self.units, None)
            if item is None:
                self.exhausted = True
            elif isinstance(item, ErrorItem):  # known bad at enumeration
                row = error_row(item.index, item.source, item.frame, item.error, "driver")
                self.send_rows(ResultBatch.from_rows([row]))
            else:
                self.peeked = item
        if self.peeked is None:
            return None
        low = self.low_index()
        if low is not None and self.peeked.first_index >= low + self.options.reorder_buffer_items:
            return None  # too far ahead of the slowest unit: wait
        unit, self.peeked = self.peeked, None
        self.track(unit)
        return unit

    def fill(self) -> None:
        limit = self.options.units_in_flight_per_actor
        while True:
            free = [n for n in self.actors if n not in self.suspects and self.load[n] < limit]
            if not free:
                return
            unit = self.next_unit()
            if unit is None:
                return
            name = min(free, key=self.load.__getitem__)
            self.in_flight[self.actors[name].process.remote(unit, self.collector)] = (name, unit)
            self.load[name] += 1

    # -- results -----------------------------------------------------------------------

    def on_unit_done(self, ref: Any) -> None:
        name, unit = self.in_flight.pop(ref)
        if name in self.load:
            self.load[name] -= 1
        exceptions = self.ray.exceptions
        try:
            done: UnitDone = self.ray.get(ref)
        except exceptions.RayTaskError as exc:  # raised by our code inside the actor
            stop = stops_the_run(exc, exceptions.RayTaskError)
            if stop is not None:  # not the items' fault: no error rows; a rerun resumes
                raise stop from None
            logger.warning("unit %d failed on %s: %s", unit.unit_id, name, exc)
            self.reschedule(unit, describe(exc.cause or exc))
            return
        except exceptions.RayError as exc:  # the actor died, or cannot be placed any more
            logger.warning("actor %s lost unit %d: %s", name, unit.unit_id, exc)
            self.mark_suspect(name)
            self.reschedule(unit, f"worker died ({type(exc).__name__})")
            return
        self.open_ids.discard(unit.unit_id)
        self.worker_logs.show(done.node, done.logs)
        s = self.summary
        if len(s.error_samples) < 10:
            s.error_samples.extend(done.error_samples)
        node = s.nodes.setdefault(done.node, {"items": 0, "errors": 0, "busy_s": 0.0})
        node["items"] += done.items
        node["errors"] += done.errors
        node["busy_s"] += done.busy_s
        delivery = Delivery(
            unit.first_index, unit.first_index + len(unit), done.items, done.errors, unit=unit
        )
        self.on_delivered(delivery, done.collector_epoch, done.committed_until)
        self.options.unit_size.observe(time.perf_counter(), s.processed)

    def send_rows(self, rows: ResultBatch) -> None:
        """Hand error rows made here (not by an actor) to the collector."""
        epoch, committed = self.collector_call(self.collector.add.remote(rows))
        if len(self.summary.error_samples) < 10:
            self.summary.error_samples.extend(rows.errors()[:1])
        delivery = Delivery(rows.first, rows.end, len(rows), len(rows), rows=rows)
        self.on_delivered(delivery, epoch, committed)

    def resend_rows(self) -> None:
        while self.rows_to_resend:
            rows = self.rows_to_resend.popleft().rows
            assert rows is not None
            self.send_rows(rows)

    # -- exactly-once through collector restarts ---------------------------------------

    def on_delivered(self, delivery: Delivery, epoch: str, committed: int) -> None:
        self.summary.processed += delivery.items
        self.summary.errors += delivery.errors
        if epoch != self.epoch:
            status: CollectorStatus = self.collector_call(self.collector.status.remote())
            if status.epoch != self.epoch:
                self.collector_restarted(status.epoch, status.committed_until)
            if epoch != self.epoch:  # taken by an instance that has died since
                committed = self.committed_until
                if delivery.end_index > committed:
                    self.redeliver(delivery)
                    return
        self.committed_until = max(self.committed_until, committed)
        heapq.heappush(self.delivered, (delivery.end_index, next(self.delivery_ids), delivery))
        while self.delivered and self.delivered[0][0] <= self.committed_until:
            heapq.heappop(self.delivered)

    def collector_restarted(self, epoch: str, committed: int) -> None:
        """A new collector instance: what it had buffered is gone; deliver it again."""
        logger.warning("the collector restarted; delivering again from index %d", committed)
        self.epoch, self.committed_until = epoch, committed
        pending = sorted((d for _, _, d in self.delivered), key=lambda d: d.first_index)
        self.delivered.clear()
        for delivery in pending:
            if delivery.end_index > committed:
                self.redeliver(delivery)

    def redeliver(self, delivery: Delivery) -> None:
        self.summary.processed -= delivery.items  # counted again when delivered again
        self.summary.errors -= delivery.errors
        if delivery.unit is not None:
            self.track(delivery.unit)
            self.retry.append(delivery.unit)
        else:
            self.rows_to_resend.append(delivery)

    def collector_call(self, ref: Any) -> Any:
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, DistinferError):  # e.g. an OutputError: the disk is full
                raise exc.cause from None
            raise
        except self.ray.exceptions.RayActorError as exc:
            raise WorkerError(
                f"the result collector died and could not be restarted: {exc}; rerun the "
                "same command to resume from what was committed"
            ) from exc

    # -- failures ------------------------------------------------------------------------

    def reschedule(self, unit: WorkUnit, reason: str) -> None:
        attempts = self.attempts[unit.unit_id] = self.attempts.get(unit.unit_id, 0) + 1
        if attempts < MAX_ATTEMPTS:
            self.retry.appendleft(unit)
            return
        self.open_ids.discard(unit.unit_id)
        parts = split(unit, self.unit_ids)
        if not parts:  # one item, or a video segment: its rows record the failure
            self.send_rows(failed_rows(unit, f"failed {attempts} times; last: {reason}"))
            return
        for part in parts:  # isolate the item that kills workers
            self.attempts[part.unit_id] = MAX_ATTEMPTS - 1
            self.track(part)
        self.retry.extendleft(reversed(parts))

    def mark_suspect(self, name: str) -> None:
        if name in self.actors and name not in self.suspects:
            self.suspects[name] = _Suspect(
                since=time.monotonic(), probe=self.actors[name].info.remote()
            )

    def on_probe_done(self, ref: Any) -> None:
        name = next(n for n, s in self.suspects.items() if s.probe == ref)
        suspect = self.suspects[name]
        try:
            self.ray.get(ref)
        except self.ray.exceptions.ActorUnavailableError:
            # Restarting, or its death not yet known to Ray: ask again shortly.
            suspect.probe, suspect.probe_at = None, time.monotonic() + PROBE_INTERVAL_S
            return
        except self.ray.exceptions.RayError as exc:
            logger.warning("actor %s is gone for good: %s", name, exc)
            self.drop_actor(name)
            return
        logger.info("actor %s is back", name)
        del self.suspects[name]

    def check_suspects(self) -> None:
        now = time.monotonic()
        for name, suspect in list(self.suspects.items()):
            if now - suspect.since > ACTOR_RESTART_TIMEOUT_S:
                logger.warning("actor %s not back after %.0f s", name, ACTOR_RESTART_TIMEOUT_S)
                self.drop_actor(name)
            elif suspect.probe is None and now >= suspect.probe_at:
                suspect.probe = self.actors[name].info.remote()

    def drop_actor(self, name: str) -> None:
        actor = self.actors.pop(name, None)
        self.load.pop(name, None)
        self.suspects.pop(name, None)
        if actor is not None:
            self.ray.kill(actor, no_restart=True)  # a restart still pending holds resources

    def check_error_budget(self) -> None:
        s = self.summary
        limit = self.options.max_error_fraction
        if limit < 1.0 and s.processed >= 20 and s.errors > limit * s.processed:
            s.aborted = (
                f"{s.errors} of {s.processed} items failed, more than "
                f"cluster.max_error_fraction={limit}"
            )
            raise Abort(s.aborted)
