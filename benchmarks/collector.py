"""collector: rows per second through the ``OrderedCollector`` actor alone.

Fed realistic rows (a text detector's: five quads each) as Arrow batches in
shuffled units by a few sender actors, at 8, 64 and 256 rows a call (one unit
of ``items_per_unit`` items; the target, >= 20,000 rows/s, is judged at 64).
Beside it, to show where the time goes: the Ray transport alone (a no-op
actor), the Arrow conversion alone (``ResultBatch.from_rows``, the actors'
cost) and the Parquet write alone.
"""

from __future__ import annotations

import argparse
import functools
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from distinfer.bench import Echo, Report, timed

DEFAULTS: dict[str, Any] = {}
#: Rows per ``collector.add`` call: one unit, ``cluster.items_per_unit`` items. 8 is the
#: default; 64 what a run of a small model (ms per item) would use; 256 shows the trend.
COLLECTOR_ROWS_PER_CALL = (8, 64, 256)
#: The collector target (>= 20,000 rows/s) is judged at this size.
COLLECTOR_TARGET_ROWS_PER_CALL = 64
COLLECTOR_TRANSPORT_ROWS_PER_CALL = (8, 64)
COLLECTOR_SENDERS = 4
#: Units are shuffled within windows of this many rows (the driver's reorder bound).
COLLECTOR_WINDOW_ROWS = 4096


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rows", type=int, default=200_000, help="Rows fed to the collector (default 200000)."
    )


def run(args: argparse.Namespace, report: Report, workdir: Path, say: Echo) -> None:
    from distinfer.distributed._ray import ray_session

    with ray_session(None):
        collector_mode(args.rows, report, workdir)


def realistic_rows(count: int, boxes: int = 5) -> list[dict[str, Any]]:
    """``RESULT_SCHEMA`` rows like a text detector's: ``boxes`` quads each."""
    from distinfer import Annotation, Prediction
    from distinfer.distributed._rows import result_row

    rng = np.random.default_rng(0)
    rows = []
    for i in range(count):
        annotations = []
        for _ in range(boxes):
            x, y = rng.uniform(0, 1000), rng.uniform(0, 900)
            w, h = rng.uniform(50, 250), rng.uniform(15, 40)
            quad = (x, y, x + w, y, x + w, y + h, x, y + h)
            annotations.append(
                Annotation("text", float(rng.uniform(0.5, 1)), (x, y, x + w, y + h), polygon=quad)
            )
        prediction = Prediction(annotations, width=1280, height=960)
        rows.append(result_row(i, f"/data/pages/page_{i:05d}.jpg", None, prediction, "node-0"))
    return rows


class RowSender:
    """A stand-in for an inference actor: sends units of rows, two calls in flight.

    The rows of each size are converted to Arrow once; a unit only gets its own
    index column. What converting costs an actor is measured on its own
    (``collector_build_rows_per_s_<n>``): on a real cluster it is spent on the
    actors' nodes, not the collector's.
    """

    def __init__(self, templates: list[dict[str, Any]]) -> None:
        self.templates = templates

    def send(self, sink: Any, firsts: Sequence[int], rows_per_call: int, total: int) -> int:
        import pyarrow as pa
        import ray

        from distinfer.distributed._rows import ResultBatch
        from distinfer.engine._prediction import RESULT_SCHEMA

        template = ResultBatch.from_rows(self.templates[:rows_per_call]).records
        pending: deque[Any] = deque()
        for first in firsts:
            n = min(rows_per_call, total - first)
            index = pa.array(np.arange(first, first + n, dtype=np.int64))
            columns = [index, *(c.slice(0, n) for c in template.columns[1:])]
            batch = ResultBatch(pa.RecordBatch.from_arrays(columns, schema=RESULT_SCHEMA))
            pending.append(sink.add.remote(batch))
            if len(pending) > 1:  # an actor thread waits for its add() before the next unit
                ray.get(pending.popleft())
        ray.get(list(pending))
        return len(firsts)


class NullSink:
    """Receives batches and drops them: the Ray transport (and batch check) alone."""

    def add(self, batch: Any) -> tuple[str, int]:
        return "null", len(batch)


def _send_all(senders: Sequence[Any], sink: Any, total: int, rows_per_call: int) -> float:
    """Feed ``total`` rows to ``sink`` from ``senders`` in shuffled units; return seconds."""
    import ray

    firsts = list(range(0, total, rows_per_call))
    window = max(1, COLLECTOR_WINDOW_ROWS // rows_per_call)
    rng = random.Random(0)
    for start in range(0, len(firsts), window):
        chunk = firsts[start : start + window]
        rng.shuffle(chunk)
        firsts[start : start + window] = chunk
    started = time.perf_counter()
    calls = [
        s.send.remote(sink, firsts[k :: len(senders)], rows_per_call, total)
        for k, s in enumerate(senders)
    ]
    ray.get(calls)
    return time.perf_counter() - started


def _collector_rate(senders: Sequence[Any], folder: Path, total: int, rows_per_call: int) -> Any:
    """Rows per second through a fresh collector, its final commit included."""
    import ray

    from distinfer.distributed._collector import OrderedCollector

    remote = ray.remote(OrderedCollector).options(num_cpus=0)
    collector = remote.remote(str(folder), "bench", rows_per_part=5000, flush_interval_s=5.0)
    ray.get(collector.status.remote())
    elapsed = _send_all(senders, collector, total, rows_per_call)
    started = time.perf_counter()
    manifest = ray.get(collector.finish.remote(total, {}))
    elapsed += time.perf_counter() - started
    if manifest["committed_until"] != total:
        raise RuntimeError(f"collector committed {manifest['committed_until']} of {total} rows")
    ray.kill(collector)
    return total / elapsed


def _build_each(units: Sequence[Sequence[dict[str, Any]]]) -> None:
    from distinfer.distributed._rows import ResultBatch

    for rows in units:
        ResultBatch.from_rows(rows)


def _best_of_3(items: int, fn: Callable[[], object]) -> float:
    """Items per second of ``fn``, best of 3: one pass measures the machine's load more."""
    return max(timed(items, fn).fps for _ in range(3))


def collector_mode(total: int, report: Report, workdir: Path) -> None:
    """Every figure of the collector benchmark, ``total`` rows for each rate through Ray."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray

    from distinfer.engine._prediction import RESULT_SCHEMA

    templates = realistic_rows(max(COLLECTOR_ROWS_PER_CALL))
    sender_cls = ray.remote(RowSender).options(num_cpus=0)
    senders = [sender_cls.remote(templates) for _ in range(COLLECTOR_SENDERS)]
    ray.get([s.__ray_ready__.remote() for s in senders])
    try:
        for n in COLLECTOR_ROWS_PER_CALL:
            rate = _collector_rate(senders, workdir / f"collector-{n}", total, n)
            report.add(
                "collector", f"collector_results_per_s_{n}", rate, f"rows/s, {n} rows a call"
            )
        for n in COLLECTOR_TRANSPORT_ROWS_PER_CALL:
            null = ray.remote(NullSink).options(num_cpus=0).remote()
            rate = total / _send_all(senders, null, total, n)
            report.add(
                "collector",
                f"collector_transport_rows_per_s_{n}",
                rate,
                f"rows/s, no-op actor, {n}",
            )
            ray.kill(null)
    finally:
        for sender in senders:
            ray.kill(sender)
    for n in COLLECTOR_ROWS_PER_CALL:  # an actor's cost per unit, over ~5000 rows
        units = [templates[:n]] * max(1, 5000 // n)
        fps = _best_of_3(n * len(units), functools.partial(_build_each, units))
        report.add("collector", f"collector_build_rows_per_s_{n}", fps, f"rows/s, from_rows, {n}")
    rows = [{**templates[i % len(templates)], "index": i} for i in range(5000)]
    whole = pa.Table.from_pylist(rows, schema=RESULT_SCHEMA)
    fps = _best_of_3(len(rows), lambda: pq.write_table(whole, workdir / "check.parquet"))
    report.add("collector", "collector_parquet_rows_per_s", fps, "rows/s, write_table alone")
    report.values.update(collector_rows=total, collector_senders=COLLECTOR_SENDERS)
    target = f"collector_results_per_s_{COLLECTOR_TARGET_ROWS_PER_CALL}"
    report.target("collector_results_per_s", target, None, 20_000.0)
    report.notes["collector"] = (
        f"the target is judged at {COLLECTOR_TARGET_ROWS_PER_CALL} rows a call "
        f"(cluster.items_per_unit: {COLLECTOR_TARGET_ROWS_PER_CALL}, what a small model's "
        "run would use); senders send prebuilt Arrow batches (build cost: collector_build_*)"
    )
