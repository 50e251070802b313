"""What the benchmarks read from Linux's /proc: per-process CPU and peak RSS, the machine's CPU.

Elsewhere these see nothing (``ProcessWatch``) or answer None (``machine_cpu_s``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType


def machine_cpu_s() -> tuple[float, float, float] | None:
    """(wall, CPU seconds busy on the machine, CPU seconds of this process); Linux only."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    busy = (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # less idle, iowait
    own = os.times()
    return time.perf_counter(), busy, own.user + own.system


def cpu_model() -> str | None:
    """The CPU's model name from /proc/cpuinfo (None elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return None


@dataclass
class _Proc:
    title: str
    cpu_first_s: float
    cpu_last_s: float
    peak_mb: float


class ProcessWatch:
    """This process and its descendants (Ray's daemons and workers), sampled from /proc:
    CPU seconds and peak RSS (VmHWM) by process title. Linux only; elsewhere it sees
    nothing. A process that ends between samples loses its last interval.

    >>> with ProcessWatch() as watch:                     # doctest: +SKIP
    ...     run(config)
    >>> watch.cpu_s_by_title()["InferenceActor"]          # doctest: +SKIP
    41.2
    """

    def __init__(self, interval_s: float = 0.2) -> None:
        self.interval_s = interval_s
        self.procs: dict[int, _Proc] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-watch", daemon=True)

    def __enter__(self) -> ProcessWatch:
        self._sample(first=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def cpu_s_by_title(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for proc in self.procs.values():
            out[proc.title] = out.get(proc.title, 0.0) + proc.cpu_last_s - proc.cpu_first_s
        return out

    def peak_mb_by_title(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for proc in self.procs.values():
            out[proc.title] = max(out.get(proc.title, 0.0), proc.peak_mb)
        return out

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self, first: bool = False) -> None:
        for pid, (title, cpu_s, peak_mb) in _process_tree(os.getpid()).items():
            known = self.procs.get(pid)
            if known is None:
                self.procs[pid] = _Proc(title, cpu_s if first else 0.0, cpu_s, peak_mb)
            else:  # a worker's title changes (IDLE -> the actor); an exiting one's is blank
                known.title = title if title != "?" else known.title
                known.cpu_last_s = cpu_s
                known.peak_mb = max(known.peak_mb, peak_mb)


def _process_tree(root: int) -> dict[int, tuple[str, float, float]]:
    """``root`` and its descendants: pid -> (title, CPU seconds, VmHWM in MB)."""
    stats: dict[int, list[str]] = {}  # pid -> the fields of /proc/<pid>/stat after the name
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return {}
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat") as f:
                stats[int(entry)] = f.read().rpartition(")")[2].split()
        except OSError:
            continue
    tick = os.sysconf("SC_CLK_TCK")
    tree: dict[int, tuple[str, float, float]] = {}
    for pid, fields in stats.items():
        ancestor = pid
        while ancestor not in (root, 0, 1) and ancestor in stats:
            ancestor = int(stats[ancestor][1])
        if ancestor != root:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().replace(b"\0", b" ").decode(errors="replace").split()
            with open(f"/proc/{pid}/status") as f:
                hwm = next((int(x.split()[1]) for x in f if x.startswith("VmHWM:")), 0)
        except OSError:
            continue
        tree[pid] = (
            title(argv, pid == root),
            (int(fields[11]) + int(fields[12])) / tick,
            hwm / 1024,
        )
    return tree


def title(argv: Sequence[str], root: bool) -> str:
    """``InferenceActor`` for ``ray::InferenceActor.process``, ``raylet``, ``driver``...

    >>> title(["ray::InferenceActor.process"], root=False)
    'InferenceActor'
    >>> title(["/usr/bin/python3", "-u", "/x/ray/_private/workers/default_worker.py"], False)
    'default_worker.py'
    """
    if root:
        return "driver"
    if not argv:
        return "?"
    if argv[0].startswith("ray::"):
        return argv[0].removeprefix("ray::").split(".")[0]
    name = os.path.basename(argv[0])
    if name.startswith("python") and len(argv) > 1:
        name = os.path.basename(next((a for a in argv[1:] if not a.startswith("-")), argv[1]))
    return name
