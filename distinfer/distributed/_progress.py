"""Progress for ``distinfer run``: a bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ._summary import RunSummary

LINE_INTERVAL_S = 10.0
BAR_INTERVAL_S = 0.2


def _duration(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Call with the running summary (and the total once known)."""

    def __init__(self, stream: TextIO = sys.stderr, mode: str = "auto") -> None:
        self.stream = stream
        if mode == "auto":
            mode = "bar" if stream.isatty() else "lines"
        self.mode = mode
        self.started = time.monotonic()
        self.last = 0.0
        self.estimate: int | None = None

    def __call__(self, summary: RunSummary, total: int | None) -> None:
        if self.mode == "off":
            return
        now = time.monotonic()
        final = total is not None
        interval = BAR_INTERVAL_S if self.mode == "bar" else LINE_INTERVAL_S
        if not final and now - self.last < interval:
            return
        self.last = now
        elapsed = now - self.started
        done = summary.processed
        rate = done / elapsed if elapsed > 0 else 0.0
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
        if self.mode == "bar":
            self.stream.write("\r" + text.ljust(100)[:100] + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
