"""The ``distributed`` mode: one ``distinfer.run`` of the bench pages against the limit.

An embedded local Ray when none is running, between two limit measurements
(the higher is used); with ``--repeat N``, N runs and the one with the median
ratio. The ratio uses the steady rate, from the first result to the start of
the drain; the rate from the first result to the end and the whole wall time
(Ray start, actor start, Parquet commit, shutdown) are reported beside it.

``bracketed_run`` takes a ``Watch`` to report each process's CPU time per item
as well: ``benchmarks/`` passes one that samples ``/proc``.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from ._limit import bare_model, measure_limit
from ._options import BenchOptions, openvino_overrides
from ._pages import image_paths
from ._report import Report


class Watch(Protocol):
    """Samples the processes of a run while it is entered: CPU seconds and peak RSS."""

    def __enter__(self) -> Any: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def cpu_s_by_title(self) -> dict[str, float]: ...

    def peak_mb_by_title(self) -> dict[str, float]: ...


@dataclass
class RunTiming:
    """A ``run`` progress function that notes when each unit's results arrive."""

    clock: Callable[[], float] = time.perf_counter
    acks: list[tuple[float, int]] = field(default_factory=list)  # (time, items so far)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def __call__(self, summary: Any, total: int | None) -> None:
        if summary.processed > (self.acks[-1][1] if self.acks else 0):
            self.acks.append((self.clock(), summary.processed))

    def steady_items_per_s(self, drain_items: int) -> float | None:
        """Items per second with the pipeline full at both ends of the window.

        Items of several units run interleaved in an actor, so when the first unit
        is acknowledged the others in flight are partly done, and the last
        ``drain_items`` (all in flight at once) finish in a burst. The window runs
        from the first acknowledgement to the last one before that drain, where the
        work in flight is the same; None when the window holds fewer items than the
        drain (too short to mean anything).
        """
        if not self.acks:
            return None
        t0, n0 = self.acks[0]
        end = [(t, n) for t, n in self.acks if n <= self.acks[-1][1] - drain_items and t > t0]
        if not end:
            return None
        t1, n1 = end[-1]
        return (n1 - n0) / (t1 - t0) if n1 - n0 >= drain_items else None

    def first_to_end_items_per_s(self) -> float | None:
        """Items after the first acknowledgement over the time from it to the last."""
        if len(self.acks) < 2:
            return None
        (t0, n0), (t1, n1) = self.acks[0], self.acks[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else None


@dataclass(frozen=True)
class RunFigures:
    items: int
    wall_s: float
    first_result_s: float | None
    steady_items_per_s: float | None
    first_to_end_items_per_s: float | None
    cpu_s: dict[str, float] = field(default_factory=dict)  # by process title, whole run
    peak_mb: dict[str, float] = field(default_factory=dict)  # VmHWM, by process title

    @property
    def wall_items_per_s(self) -> float:
        return self.items / self.wall_s


def run_config(model: str, images: Path | str, out: Path | str, overrides: Sequence[str]) -> Any:
    """The ``RunConfig`` of a bench run: ``model`` over ``images`` into ``out`` (paths or
    URIs), quiet."""
    from .._config import RunConfig
    from ..models._bundled import BUNDLED_MODELS

    section = {"name": model} if model in BUNDLED_MODELS else {"path": str(Path(model).resolve())}
    return RunConfig.parse(
        {
            "model": section,
            "input": {"images": str(images)},
            "output": {"parquet": str(out)},
            "cluster": {"progress": "off"},
        },
        overrides,
    )


def timed_run(
    model: str,
    images: Path | str,
    out: Path | str,
    overrides: Sequence[str],
    watch: Watch | None = None,
) -> RunFigures:
    """One ``distinfer.run`` of ``model`` over ``images``; every item must succeed.

    ``watch`` (entered around the run) gives the CPU time and peak RSS of its
    processes; without one those figures are empty."""
    from ..distributed._driver import run

    config = run_config(model, images, out, overrides)
    timing = RunTiming()
    with watch or contextlib.nullcontext():
        summary = run(config, overwrite=True, progress=timing)
    wall = time.perf_counter() - timing.started
    if summary.aborted or summary.errors or summary.total != summary.processed:
        raise RuntimeError(
            f"run of {model} on {images}: {summary.errors} errors of {summary.total} "
            f"({summary.aborted or 'not aborted'}); first: {summary.error_samples[:1]}"
        )
    first = timing.acks[0][0] - timing.started if timing.acks else None
    cluster = config.cluster
    drain = cluster.units_in_flight_per_actor * summary.items_per_unit * max(1, len(summary.nodes))
    return RunFigures(
        summary.total,
        wall,
        first,
        timing.steady_items_per_s(drain),
        timing.first_to_end_items_per_s(),
        watch.cpu_s_by_title() if watch else {},
        watch.peak_mb_by_title() if watch else {},
    )


@dataclass(frozen=True)
class Bracket:
    """How ``bracketed_run`` measures: the limit's duration and device, the runs, a target."""

    seconds: float
    repeat: int = 1
    device: str = "CPU"
    overrides: tuple[str, ...] = ()
    #: The target on steady rate / limit.
    target: float = 0.85
    #: Makes a fresh ``Watch`` for each run; None: the runs are not watched.
    watch: Callable[[], Watch] | None = None


def bracketed_run(
    report: Report, mode: str, model: str, images: Path, out: Path, how: Bracket
) -> None:
    """Timed runs between limit measurements of the same model, reported as ``mode``.

    With ``repeat`` N, N runs with a limit measured before, between and after
    them; each run's ratio uses the higher of the two limits around it (when
    other work slows the machine down for part of the time, a ratio errs low,
    never high), and the run with the median ratio is reported, every ratio
    beside it.
    """
    bare = bare_model(model, image_paths(images)[0].read_bytes())
    openvino = openvino_overrides(how.overrides)
    limits = [measure_limit(bare, how.seconds, how.device, openvino)[0]]
    runs = []
    for _ in range(how.repeat):
        watch = how.watch() if how.watch is not None else None
        figures = timed_run(model, images, out, how.overrides, watch)
        limits.append(measure_limit(bare, how.seconds, how.device, openvino)[0])
        limit = max(limits[-2:], key=lambda s: s.fps)
        steady = figures.steady_items_per_s
        runs.append((figures, limit, figures.wall_items_per_s if steady is None else steady))
    ratios = [rate / limit.fps for _, limit, rate in runs]
    figures, limit, steady = runs[ratios.index(statistics.median_low(ratios))]
    report.values[f"{mode}_limit_fps_each"] = [s.fps for s in limits]
    report.values[f"{mode}_vs_limit_each_run"] = ratios
    report.add(mode, f"{mode}_limit_fps", limit.fps, "images/s, bare model, max of 2")
    if figures.steady_items_per_s is None:
        report.notes[mode] = "run too short for a steady window: the wall rate stands in"
    if len(runs) > 1:
        shown = ", ".join(f"{r:.3f}" for r in ratios)
        report.notes[f"{mode} runs"] = f"steady / limit of each run: {shown}; the median is shown"
    rates = [
        ("items_per_s", steady, "items/s, steady (pipeline full)"),
        ("first_to_end_items_per_s", figures.first_to_end_items_per_s, "items/s, 1st result->end"),
        ("wall_items_per_s", figures.wall_items_per_s, "items/s, whole wall"),
    ]
    for key, value, label in rates:
        if value is not None:
            report.add(mode, f"{mode}_{key}", value, label, f"{value / limit.fps:.3f} x limit")
    report.add(mode, f"{mode}_wall_s", figures.wall_s, "s")
    if figures.first_result_s is not None:
        report.add(mode, f"{mode}_first_result_s", figures.first_result_s, "s")
    if figures.cpu_s:
        _report_cpu(report, mode, figures, limit.cpu_ms)
    report.target(f"{mode}_vs_limit", f"{mode}_items_per_s", f"{mode}_limit_fps", how.target)


def _report_cpu(report: Report, mode: str, figures: RunFigures, limit_cpu_ms: float) -> None:
    """Every process's CPU time per item (a watched run), the largest in the table."""
    cpu = {
        k: 1e3 * v / figures.items for k, v in sorted(figures.cpu_s.items(), key=lambda kv: -kv[1])
    }
    report.values[f"{mode}_cpu_ms_per_item"] = cpu
    total = sum(cpu.values())
    vs = f"{limit_cpu_ms / total:.3f} limit/run"
    report.add(mode, f"{mode}_cpu_ms_per_item_total", total, "ms CPU/item, all processes", vs)
    report.values[f"{mode}_limit_cpu_ms_per_item"] = limit_cpu_ms
    for title, ms in list(cpu.items())[:4]:
        report.rows.append((mode, f"  of which {title}", ms, "ms CPU/item", ""))


def distributed_mode(
    options: BenchOptions,
    report: Report,
    pages: Path,
    workdir: Path,
    watch: Callable[[], Watch] | None = None,
) -> None:
    """``distinfer bench --modes distributed``: ``bracketed_run`` of the pages, target 0.85."""
    from ..distributed._ray import use_loopback

    use_loopback()  # before anything imports ray: its settings are read at import
    import ray

    report.values["distributed_ray_started"] = started = not ray.is_initialized()
    how = Bracket(options.seconds, options.repeat, options.device, options.overrides, 0.85, watch)
    bracketed_run(report, "distributed", options.model, pages, workdir / "distributed", how)
    report.notes["distributed"] = (
        ("whole wall and CPU include" if watch else "whole wall includes")
        + (" Ray's start and shutdown" if started else " Ray was up")
        + "; the ratio to limit uses the steady rate (first result to the start of the drain)"
    )
