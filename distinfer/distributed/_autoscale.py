"""Asking a cluster's autoscaler for nodes as the backlog grows, and letting them go.

``ray.autoscaler.sdk.request_resources`` is a hint that persists until the
next call, and it names totals, not increments: three node-sized bundles mean
a cluster that can hold three such nodes. A run asks for one node more than
it uses when

- every actor holds all the units it may and more work waits (another actor
  would get work at once), for ``SCALE_UP_AFTER_S`` in a row, and
- the work left would take longer than ``MIN_ETA_S`` at the current rate (a
  node takes minutes to boot; it should find work when it comes). While the
  total is still being counted, the work left is taken as large;

never beyond ``cluster.max_nodes``. A node-sized bundle is ``{"CPU": n}``, n
the CPUs of the largest node in use. When the requested node has joined, the
next one is asked for under the same conditions. At the end the run asks for
nothing (``request_resources(bundles=[])``), and the autoscaler may remove
the idle nodes again. Only runs attached to a cluster (``cluster.address``)
ask: an embedded Ray has no autoscaler.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

#: Demand must outrun the actors this long before a node is asked for.
SCALE_UP_AFTER_S = 10.0
#: No node is asked for when the work left takes less than this at the current rate.
MIN_ETA_S = 60.0
#: The rate is measured over this long.
RATE_WINDOW_S = 30.0

#: ``request(bundles)``: what ``ray.autoscaler.sdk.request_resources(bundles=...)`` does.
Request = Callable[[list[dict[str, float]]], None]


@dataclass(frozen=True)
class Demand:
    """What the dispatch loop knows about the backlog, at a poll of the nodes."""

    processed: int  # items done so far in this run
    saturated: bool  # every actor holds all the units it may, and more work waits


def request_resources(bundles: list[dict[str, float]]) -> None:
    """Ray's autoscaler hint (``[]`` withdraws the run's request)."""
    from ray.autoscaler.sdk import request_resources as ray_request

    ray_request(bundles=bundles)


class ScaleRequests:
    """Node requests of one run; see the module docstring.

    ``remaining(processed)`` is the number of items left to do, or None while
    the total is not known.

    >>> asked = []
    >>> clock = iter(range(0, 1000, 5)).__next__
    >>> scale = ScaleRequests(asked.append, max_nodes=3, remaining=lambda done: 10**6,
    ...                       clock=lambda: float(clock()))
    >>> for n in range(6):
    ...     scale.update(1, 8.0, Demand(processed=100 * n, saturated=True))
    >>> asked
    [[{'CPU': 8.0}, {'CPU': 8.0}]]
    >>> scale.release(); asked[-1]
    []
    """

    def __init__(
        self,
        request: Request,
        *,
        max_nodes: int | None,
        remaining: Callable[[int], int | None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.request = request
        self.max_nodes = max_nodes
        self.remaining = remaining
        self.clock = clock
        self.saturated_since: float | None = None
        self.samples: deque[tuple[float, int]] = deque()  # (time, items processed)
        self.asked: tuple[int, float] | None = None  # (nodes, CPUs per node) last asked

    def update(self, nodes: int, node_cpus: float, demand: Demand) -> None:
        """Ask for one node more than ``nodes`` (each of ``node_cpus``) when it pays."""
        now = self.clock()
        self.samples.append((now, demand.processed))
        while len(self.samples) > 2 and now - self.samples[1][0] >= RATE_WINDOW_S:
            self.samples.popleft()
        if not demand.saturated:
            self.saturated_since = None
            return
        if self.saturated_since is None:
            self.saturated_since = now
        if now - self.saturated_since < SCALE_UP_AFTER_S or node_cpus <= 0:
            return
        (t0, n0), (t1, n1) = self.samples[0], self.samples[-1]
        if t1 - t0 < 1.0 or n1 <= n0:
            return  # no rate yet: nothing says how long the rest takes
        left = self.remaining(demand.processed)
        if left is not None and left / ((n1 - n0) / (t1 - t0)) < MIN_ETA_S:
            return
        target = nodes + 1 if self.max_nodes is None else min(nodes + 1, self.max_nodes)
        if target <= nodes or self.asked == (target, node_cpus):
            return
        logger.info("asking the autoscaler for %d node(s) of %g CPUs", target, node_cpus)
        self._ask([{"CPU": node_cpus}] * target)
        self.asked = (target, node_cpus)

    def release(self) -> None:
        """Withdraw the run's request, if it made one."""
        if self.asked is not None:
            self._ask([])
            self.asked = None

    def _ask(self, bundles: list[dict[str, float]]) -> None:
        try:
            self.request(bundles)
        except Exception:  # a hint: the run goes on without it
            logger.warning("the autoscaler request failed", exc_info=True)
