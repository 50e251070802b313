"""The ``host`` mode: what one page costs the host, inference taken out.

Two figures per page, each the median of ``--repeat`` passes:

- **CPU ms** (this process, all threads) with the model's inference replayed:
  every page is first run once through a real engine, recording the outputs of
  each ``infer`` call; then decode, the task's pre- and post-processing
  (``preprocess`` of each page as it is decoded, then ``predict_many`` over units
  of ``UNIT_PAGES`` pages, as an inference actor runs them) and the unit's result
  rows are timed with ``infer`` answering from that record, OpenCV
  single-threaded as in an inference actor. Decode is reported apart: the target
  is the rest.
- **GIL-held ms** on the in-process async pipeline (``Deployment.infer_async``
  with real inference, as the ``async`` mode runs it), sampled by
  ``py-spy record --gil``: the samples in which some thread of this process
  held the GIL, over the sampling rate. Needs ``py-spy`` (``pip install
  py-spy``); without it, or where it may not read this process, that figure
  is skipped with the reason. Over the same passes, on Linux, the engine's host
  threads' time on a core and time runnable but waiting for one, per page
  (``schedstat``): a host thread that waits for a core while holding the GIL
  counts as holding it, so a long wait says the GIL figure is the cores'
  contention as much as the host's Python.

1,000 / GIL ms is the most pages per second one process can pass, whatever
the cores, since only one thread at a time runs Python.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._options import BenchOptions
from ._report import BenchSkipped, Report

logger = logging.getLogger(__name__)

#: Pages per unit of the replay: an actor's first units hold 8 images (``items_per_unit: auto``).
UNIT_PAGES = 8
#: py-spy's samples per second.
GIL_SAMPLE_RATE = 1000
#: Seconds py-spy gets to attach before the timed pass starts.
PYSPY_START_TIMEOUT_S = 20.0

Calls = list[tuple[str, int, list[list[np.ndarray]]]]


def host_mode(options: BenchOptions, report: Report, images: Sequence[bytes]) -> None:
    """CPU per page with inference replayed, and GIL per page on the async pipeline."""
    from ..distributed._startup import warm_up
    from ..engine._engine import Engine
    from ..models import task_from_model

    if not images:
        raise BenchSkipped("no pages to run")
    task = task_from_model(options.model)
    units = [list(images[k : k + UNIT_PAGES]) for k in range(0, len(images), UNIT_PAGES)]
    with Engine(task, device=options.device) as engine:
        recorded = [_record(engine, unit) for unit in units]
    warm_up()  # pyarrow's first conversion, once per process (as actors do at start)
    with _opencv_as_in_actors():
        _replay(engine, units[:1], recorded[:1])  # first calls (imports, caches), not timed
        passes = [_replay(engine, units, recorded) for _ in range(options.repeat)]
    pages = len(images)
    parts = ("decode", "predict", "rows")
    per_page = {part: [1e3 * p[part] / pages for p in passes] for part in parts}
    outside = [p + r for p, r in zip(per_page["predict"], per_page["rows"], strict=True)]
    units_text = f"replayed, {UNIT_PAGES} pages a unit"
    report.add("host", "host_cpu_ms_per_item", statistics.median(outside), "ms CPU/page", "")
    for part in parts:
        label = f"ms CPU/page, {part}" + (f", {units_text}" if part == "predict" else "")
        report.add("host", f"host_{part}_cpu_ms_per_item", statistics.median(per_page[part]), label)
    if options.repeat > 1:
        report.values["host_cpu_ms_per_item_samples"] = outside
        for part in parts:
            report.values[f"host_{part}_cpu_ms_per_item_samples"] = per_page[part]
    report.notes["host"] = (
        "host_cpu_ms_per_item: CPU per page outside JPEG decode (pre- and post-processing, "
        "result rows) with the model's outputs replayed from a recording; medians of "
        f"{options.repeat} pass(es)"
    )
    try:
        _gil_figures(options, report, images)
    except BenchSkipped as exc:
        report.skipped["host gil"] = str(exc)


@contextlib.contextmanager
def _opencv_as_in_actors() -> Iterator[None]:
    """OpenCV single-threaded, as inference actors run it (``single_threaded_opencv``),
    for the replay only: the other modes measure what a user's own process gets."""
    import cv2

    from ..engine._threads import single_threaded_opencv

    before = cv2.getNumThreads()
    single_threaded_opencv()
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def _record(engine: Any, unit: Sequence[bytes]) -> Calls:
    """Run one unit for real, keeping what each ``infer`` call returned."""
    calls: Calls = []

    def infer(stage: str, inputs: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
        outputs: list[list[np.ndarray]] = engine.infer(stage, inputs)
        calls.append((stage, len(inputs), outputs))
        return outputs

    decoded = [engine.decode(data) for data in unit]
    engine.task.predict_many([p for p, _ in decoded], infer, [s for _, s in decoded])
    return calls


def _replayer(calls: Calls) -> Callable[[str, Sequence[np.ndarray]], list[list[np.ndarray]]]:
    left = iter(calls)

    def infer(stage: str, inputs: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
        try:
            want, count, outputs = next(left)
        except StopIteration:
            raise RuntimeError(f"replay: an infer call ({stage}) beyond the recording") from None
        if (stage, len(inputs)) != (want, count):
            raise RuntimeError(
                f"replay: expected infer({want!r}, {count} inputs), "
                f"got infer({stage!r}, {len(inputs)} inputs)"
            )
        return [list(out) for out in outputs]

    return infer


def _replay(
    engine: Any, units: Sequence[Sequence[bytes]], recorded: Sequence[Calls]
) -> dict[str, float]:
    """One pass over every unit: CPU seconds in decode, predict and rows."""
    from ..distributed._rows import ItemResult, ResultBatch

    spent = dict.fromkeys(("decode", "predict", "rows"), 0.0)
    first = 0
    for unit, calls in zip(units, recorded, strict=True):
        pixels, sizes, prepared = [], [], []
        for data in unit:  # each page preprocessed as it is decoded, as the engine does
            t0 = time.process_time()
            page, size = engine.decode(data)
            t1 = time.process_time()
            prepared.append(engine.task.preprocess(page))
            spent["decode"] += t1 - t0
            spent["predict"] += time.process_time() - t1
            pixels.append(page)
            sizes.append(size)
        t2 = time.process_time()
        predictions = engine.task.predict_many(pixels, _replayer(calls), sizes, prepared)
        t3 = time.process_time()
        items = [
            ItemResult(first + i, f"pages/{first + i}.jpg", None, "node", p)
            for i, p in enumerate(predictions)
        ]
        ResultBatch.from_items(items)  # as an inference actor builds a unit's rows
        spent["predict"] += t3 - t2
        spent["rows"] += time.process_time() - t3
        first += len(unit)
    return spent


# -- GIL ---------------------------------------------------------------------------


def _gil_figures(options: BenchOptions, report: Report, images: Sequence[bytes]) -> None:
    from ..engine._deployment import Deployment
    from ._engine_modes import _async_pass

    pyspy = _pyspy()
    deployment = Deployment.from_model(options.model)
    try:
        deployment.load_inference_models(
            options.device,
            openvino_configuration=options.openvino,
            inference_niceness=options.inference_niceness,
        )
        # One pass not sampled: the stages a task compiles on first use (a detector
        # shape, a recogniser width) compile in it, and hold the GIL while they do.
        _async_pass(deployment, images)
        samples: list[float] = []
        threads: list[tuple[float, float]] = []  # host threads' (run, wait) ms per page
        stacks: Counter[str] = Counter()
        for _ in range(options.repeat):
            with _sampling(pyspy) as found:
                before = _thread_times()
                _async_pass(deployment, images)
                spent = _host_thread_times(before, _thread_times())
            count = sum(found.values())
            samples.append(1e3 * count / GIL_SAMPLE_RATE / len(images))
            stacks.update(found)
            if spent is not None:
                threads.append((spent[0] / len(images), spent[1] / len(images)))
    finally:
        deployment.close()
    gil = statistics.median(samples)
    report.add("host", "host_gil_ms_per_item", gil, "ms GIL held/page (py-spy)", "")
    if gil > 0:
        report.add("host", "host_gil_pages_per_s_ceiling", 1e3 / gil, "pages/s, one process")
    if options.repeat > 1:
        report.values["host_gil_ms_per_item_samples"] = samples
    if threads:
        run, wait = (statistics.median(t[k] for t in threads) for k in (0, 1))
        report.add("host", "host_threads_run_ms_per_item", run, "ms/page host threads on a core")
        report.add("host", "host_threads_wait_ms_per_item", wait, "ms/page waiting for a core")
        report.notes["host threads"] = (
            "host_threads_*: the engine's host threads over the GIL passes, from Linux's "
            "schedstat: time on a core, and time runnable but waiting for one (a thread "
            "that waits while it holds the GIL counts in the GIL figure too)"
        )
    report.values["host_gil_top_frames"] = _top_frames(stacks)
    if options.model == "ppocr":
        report.target("host_gil_ppocr", "host_gil_ms_per_item", None, 1.5, "<=")


def _thread_times() -> dict[int, tuple[int, int]] | None:
    """Each thread of this process: ns on a core and ns runnable, waiting for one
    (``/proc/self/task/*/schedstat``); None where the system has no such file."""
    times = {}
    for task in Path("/proc/self/task").glob("*"):
        try:
            run, wait, _ = (task / "schedstat").read_text().split()
        except (OSError, ValueError):
            continue  # a thread that ended meanwhile, or no schedstat
        times[int(task.name)] = (int(run), int(wait))
    return times or None


def _host_thread_times(
    before: dict[int, tuple[int, int]] | None, after: dict[int, tuple[int, int]] | None
) -> tuple[float, float] | None:
    """The engine's host threads' ms on a core and ms waiting for one, between two reads."""
    from ..engine._engine import HOST_THREADS

    if before is None or after is None:
        return None
    host = {
        t.native_id
        for t in threading.enumerate()
        if t.name.startswith(HOST_THREADS) and t.native_id is not None
    }
    run = wait = 0
    for tid in host & after.keys():
        start = before.get(tid, (0, 0))
        run += after[tid][0] - start[0]
        wait += after[tid][1] - start[1]
    return run / 1e6, wait / 1e6


def _pyspy() -> str:
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.is_file() else shutil.which("py-spy")
    if found is None:
        raise BenchSkipped("GIL figures need py-spy (pip install py-spy)")
    return found


@contextlib.contextmanager
def _sampling(pyspy: str) -> Iterator[Counter[str]]:
    """``py-spy record --gil`` on this process while the block runs; the stacks found.

    The stacks (``frame;frame;...`` from the outermost) count the samples in which
    their thread held the GIL.
    """
    found: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="distinfer-gil-") as tmp:
        out = Path(tmp) / "gil.txt"
        command = [
            pyspy, "record", "--gil", "--nonblocking", "--rate", str(GIL_SAMPLE_RATE),
            "--format", "raw", "--output", str(out), "--pid", str(os.getpid()),
        ]  # fmt: skip
        log = Path(tmp) / "py-spy.log"
        with log.open("wb") as sink:
            spy = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
            try:
                _wait_started(spy, log)
                yield found
            finally:
                if spy.poll() is None:
                    spy.send_signal(signal.SIGINT)  # py-spy writes its output and exits
                    try:
                        spy.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        spy.kill()
        text = log.read_text(errors="replace")
        if "behind in sampling" in text:
            logger.warning("py-spy fell behind its sampling rate: the GIL figure errs low")
        if not out.is_file():
            raise BenchSkipped(f"py-spy wrote no samples: {text.strip()[-300:]}")
        for line in out.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                found[stack] += int(count)


def _wait_started(spy: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + PYSPY_START_TIMEOUT_S
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "Sampling process" in text:
            return
        if spy.poll() is not None:
            raise BenchSkipped(f"py-spy cannot sample this process: {text.strip()[-300:]}")
        time.sleep(0.05)
    raise BenchSkipped(f"py-spy did not start within {PYSPY_START_TIMEOUT_S:g} s")


def _top_frames(stacks: Counter[str], count: int = 8) -> dict[str, float]:
    """The innermost frames that held the GIL most, as shares of the samples."""
    total = sum(stacks.values())
    leaves: Counter[str] = Counter()
    for stack, n in stacks.items():
        leaves[stack.rsplit(";", 1)[-1]] += n
    return {frame: n / total for frame, n in leaves.most_common(count)} if total else {}
