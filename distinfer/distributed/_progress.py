"""Progress for ``distinfer run``: a bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import TextIO

from ._summary import RunSummary

LINE_INTERVAL_S = 10.0
BAR_INTERVAL_S = 0.2
#: The rate shown (and the ETA) is measured over about this long.
RATE_WINDOW_S = 20.0


def _duration(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Call with the running summary and the total (None until it is known).

    A terminal gets a bar redrawn in place; anything else a line every
    ``LINE_INTERVAL_S``. Once the total is known both show done/total and an ETA.
    Nodes joining and leaving, and where the metrics are served, get a line
    each when they happen; the count of nodes shows once it is more than one.
    """

    def __init__(self, stream: TextIO = sys.stderr, mode: str = "auto") -> None:
        self.stream = stream
        if mode == "auto":
            mode = "bar" if stream.isatty() else "lines"
        self.mode = mode
        self.started = time.monotonic()
        self.last = 0.0
        self.recent: deque[tuple[float, int]] = deque()  # (time, items done) of late calls
        self.events_shown = 0
        self.endpoints_shown = False

    def __call__(self, summary: RunSummary, total: int | None) -> None:
        if self.mode == "off":
            return
        self._news(summary)
        now = time.monotonic()
        final = summary.finished
        interval = BAR_INTERVAL_S if self.mode == "bar" else LINE_INTERVAL_S
        if not final and now - self.last < interval:
            return
        self.last = now
        elapsed = now - self.started
        done = summary.processed
        rate = self._rate(now, done)
        text = f"{done} items  {rate:.1f} items/s  {summary.errors} errors  {_duration(elapsed)}"
        if total is not None and total > summary.resumed_from:
            left = total - summary.resumed_from
            share = min(1.0, done / left)
            eta = (left - done) / rate if rate > 0 else 0.0
            bar = "#" * int(30 * share) + "." * (30 - int(30 * share))
            text = (
                f"[{bar}] {done}/{left}  {rate:.1f} items/s  ETA {_duration(eta)}  "
                f"{summary.errors} errors"
            )
        nodes = summary.node_count - summary.left
        if nodes > 1 or summary.joined or summary.left:
            text += f"  {nodes} nodes"
        if self.mode == "bar":
            self.stream.write("\r" + text.ljust(100)[:100] + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def _news(self, summary: RunSummary) -> None:
        """A line for each node that joined or left since the last call, and one
        for the metrics endpoints, the first time they are known."""
        lines = []
        if summary.metrics_endpoints and not self.endpoints_shown:
            self.endpoints_shown = True
            lines.append("metrics: " + " ".join(summary.metrics_endpoints))
        for event in summary.node_events[self.events_shown :]:
            if event.event != "started":
                lines.append(f"node {event.node} {event.event}: {event.actors} actor(s)")
        self.events_shown = len(summary.node_events)
        if not lines:
            return
        lead = "\r" + " " * 100 + "\r" if self.mode == "bar" else ""
        self.stream.write(lead + "\n".join(lines) + "\n")
        self.last = 0.0  # redraw the bar (or a line) at once

    def _rate(self, now: float, done: int) -> float:
        """Items/s over the last ``RATE_WINDOW_S`` (start-up left out once past it)."""
        self.recent.append((now, done))
        while len(self.recent) > 2 and now - self.recent[1][0] >= RATE_WINDOW_S:
            self.recent.popleft()
        then, before = self.recent[0]
        if now - then < 1.0:  # too soon for a window: since the start
            then, before = self.started, 0
        return (done - before) / (now - then) if now > then else 0.0
