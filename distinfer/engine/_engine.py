"""The single-node engine: a task's graphs compiled once, each with a pool of async requests.

``Engine`` is what a ``Deployment`` and every Ray inference actor hold. Items
(RGB arrays or encoded image bytes) run on a bounded pool of host threads, which
take the items queued up together: decode, the task's ``predict_many`` (which
calls ``infer`` for each model stage), then each item's completion function.
No Python runs on OpenVINO's threads.

>>> from distinfer.models import task_from_model            # doctest: +SKIP
>>> with Engine(task_from_model("ppocr-det")) as engine:   # doctest: +SKIP
...     prediction = engine.predict(image)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from .._errors import InputError, ModelError
from ..models._task import Task
from ._decode import as_rgb_array, decode_image
from ._prediction import Prediction
from ._stages import (
    AnyStage,
    BatchedStage,
    BlockingStage,
    GroupedStage,
    Outputs,
    Stage,
    TaskInfer,
    has_dynamic_batch,
    run_together,
    with_batch,
)
from ._threads import INFERENCE_NICENESS, HostThreads, available_cores, run_niced

logger = logging.getLogger(__name__)

#: Pixel limit checked on the image header before decoding (OpenCV's own default).
DEFAULT_MAX_IMAGE_PIXELS = 178_956_970
#: Items a host thread takes together when they queue up (``Engine``, ``gather``),
#: and items in flight per host thread (``max_in_flight``): a thread takes what the
#: others leave. ppocr's async pipeline, GIL held per page (2 cores, py-spy, two runs
#: of three passes): 1.69 / 1.81 ms at 4 and 4 before ``infer_many``, 1.40 / 1.67
#: with it; 1.18 / 1.11 at 8 and 4; 1.45 / 1.39 at 8 and 8 (twice the pages in memory).
GATHER = 8
IN_FLIGHT_PER_THREAD = 4
#: The name of the engine's host threads (numbered ``_0``, ``_1``, ...).
HOST_THREADS = "distinfer-host"

Image = np.ndarray | bytes
Outcome = Prediction | BaseException
#: ``done(outcome, pixels)``: the prediction or the exception, and the decoded RGB
#: pixels (None when decoding failed; possibly reduced, see ``Task.decode_scale``).
Completion = Callable[[Outcome, np.ndarray | None], None]
#: ``done(outcomes, pixels)``: the same, one entry per item of a batch.
BatchCompletion = Callable[[list[Outcome], list[np.ndarray | None]], None]
#: ``on_stage(stage, seconds)``: how long one call of a stage took (``decode``, or a
#: model stage's ``infer``, all its inputs together); on the calling thread.
StageTimer = Callable[[str, float], None]


class Engine:
    """A task compiled for one device, with pools of async infer requests and host threads.

    ``jobs`` is the number of infer requests per stage (None: one per core, and
    at least two per OpenVINO stream, so a stream always has a request waiting
    while the host copies the last one's outputs; 0: OpenVINO's optimal number).
    There are as many host threads, and each takes up to ``gather`` items that
    ``submit`` queued (default ``GATHER``) and runs them through the task's
    ``predict_many`` together: under load a page's share of infer requests,
    waits and thread hand-offs shrinks, one item alone still goes at once.
    ``max_in_flight`` bounds the items between ``submit`` and their completion
    (None: ``IN_FLIGHT_PER_THREAD`` per host thread), so host threads decode and post-process
    the next items while the device runs the current ones. ``config`` is passed to
    OpenVINO (default ``PERFORMANCE_HINT=THROUGHPUT``); ``cache_dir`` keeps
    compiled blobs so the next start is faster.

    ``batch`` is how many inputs one request of a stage carries (None: what
    the task asks for in ``batch_sizes``, if anything; an int: every stage).
    Only the THROUGHPUT engine batches. A graph with a static batch is compiled
    at that batch as well (full groups) and at its own (the rest); a graph whose
    batch dimension is dynamic takes each ``infer`` call's inputs in requests
    of up to that many.

    The stages a task names in ``lazy_stages`` (input shapes that some inputs
    never need, such as a detector's portrait graph) compile on their first
    ``infer`` instead of in ``start``: a compile costs 0.3 s of CPU, a large
    share of a short job's start-up when the shape goes unused.

    ``latency=True`` is for one item at a time (``Deployment.infer``): the
    LATENCY hint (one request spans all cores), blocking requests run on the
    calling thread, one request per stage unless ``jobs`` says otherwise.

    ``on_stage`` is told the duration of every decode and stage call (the
    distributed run's latency metrics).

    ``inference_niceness`` (Linux, THROUGHPUT only): OpenVINO's inference threads
    run that much nicer than the host threads, which then never queue behind them
    for a core while holding the GIL (``run_niced``; 0: equal).
    """

    def __init__(
        self,
        task: Task,
        *,
        device: str = "CPU",
        jobs: int | None = None,
        config: Mapping[str, Any] | None = None,
        cache_dir: str | Path | None = None,
        max_in_flight: int | None = None,
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
        latency: bool = False,
        batch: int | None = None,
        on_stage: StageTimer | None = None,
        gather: int | None = None,
        inference_niceness: int = INFERENCE_NICENESS,
    ) -> None:
        if jobs is not None and jobs < 0:
            raise ValueError(f"jobs must be >= 0 (0: OpenVINO's optimal number), got {jobs}")
        if batch is not None and batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        if gather is not None and gather < 1:
            raise ValueError(f"gather must be >= 1, got {gather}")
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        if inference_niceness < 0:
            raise ValueError(f"inference_niceness must be >= 0, got {inference_niceness}")
        self.gather = gather or GATHER
        self.batch = batch
        self.on_stage = on_stage
        #: Inputs per request of the stages that batch (known once started).
        self.batch_sizes: dict[str, int] = {}
        self.task = task
        self.device = device
        self.latency = latency
        # One blocking request at a time spans the cores: no host work to run between.
        self.inference_niceness = 0 if latency else inference_niceness
        self.jobs = 1 if latency and jobs is None else jobs  # resolved per stage in start()
        hint = "LATENCY" if latency else "THROUGHPUT"
        self.config: dict[str, Any] = {"PERFORMANCE_HINT": hint, **(config or {})}
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.max_image_pixels = max_image_pixels
        self._max_in_flight = max_in_flight
        self.max_in_flight = 0  # known once compiled: depends on the requests per stage
        self._stages: dict[str, AnyStage] = {}
        # Stages compiled on first use (``Task.lazy_stages``), and their failures.
        self._lazy: dict[str, ov.Model] = {}
        self._failed: dict[str, ModelError] = {}
        self._lazy_lock = threading.Lock()
        self._order: dict[str, int] = {}
        self._core: ov.Core | None = None
        self._host: HostThreads | None = None
        self._task_infer = TaskInfer(self.infer, self.infer_many)

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> Engine:
        """Compile the task's graphs (all but its ``lazy_stages``) and start the host threads."""
        if self._host is not None:
            return self
        core = ov.Core()
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            core.set_property({"CACHE_DIR": str(self.cache_dir)})
        graphs = dict(self.task.graphs())
        self._order = {name: i for i, name in enumerate(graphs)}
        lazy = set(self.task.lazy_stages) & graphs.keys()
        if lazy == graphs.keys():
            raise ModelError(
                f"task {self.task.kind!r} marks every stage lazy; at least one must compile "
                "at start (it sets the number of infer requests)"
            )
        for name, graph in graphs.items():
            if name not in lazy:
                self._stages[name] = self._build(core, name, graph)
        requests = max(len(s) for s in self._stages.values())
        self.jobs = requests  # the lazy stages get as many
        self._core = core
        self._lazy = {name: graphs[name] for name in lazy}
        threads = min(requests, self._max_in_flight or requests)
        self.max_in_flight = self._max_in_flight or threads * IN_FLIGHT_PER_THREAD
        self._host = HostThreads(
            threads,
            HOST_THREADS,
            slots=self.max_in_flight,
            gather=self.gather,
            run_items=self._run_items,
        )
        logger.info(
            "compiled %s on %s: %d infer requests per stage, %d host threads, "
            "%d items in flight, batches %s%s",
            self.task.kind,
            self.device,
            requests,
            threads,
            self.max_in_flight,
            self.batch_sizes or "none",
            f", on first use: {', '.join(sorted(lazy))}" if lazy else "",
        )
        return self

    def _build(self, core: ov.Core, name: str, graph: ov.Model) -> AnyStage:
        """Compile one stage: blocking, async, or async with batched requests."""
        compiled = self._compile(core, name, graph)
        sizes = self.task.batch_sizes
        size = 1 if self.latency else (self.batch or sizes.get(name, 1))
        if self.latency:
            return BlockingStage(compiled, self._requests(compiled))
        if size == 1:
            return Stage(compiled, self._requests(compiled))
        self.batch_sizes[name] = size
        if has_dynamic_batch(graph):  # one graph takes every batch: a request per group
            return GroupedStage(Stage(compiled, self._requests(compiled)), size)
        batched = self._compile(core, name, with_batch(graph, size))
        return BatchedStage(
            Stage(batched, self._requests(batched)),
            Stage(compiled, self._requests(compiled)),
            size,
        )

    def _stage(self, stage: str) -> AnyStage:
        """A compiled stage; a lazy one compiles on its first use, once (a failure is
        kept, raised again)."""
        found = self._stages.get(stage)
        if found is not None:
            return found
        with self._lazy_lock:
            if stage in self._stages:
                return self._stages[stage]
            if stage in self._failed:
                raise self._failed[stage]
            if stage not in self._lazy:
                raise ModelError(
                    f"task {self.task.kind!r} has no stage {stage!r} "
                    f"(stages: {sorted([*self._stages, *self._lazy])})"
                )
            assert self._core is not None
            try:
                built = self._build(self._core, stage, self._lazy[stage])
            except ModelError as exc:
                self._failed[stage] = exc
                raise
            logger.info("compiled stage %s of %s on first use", stage, self.task.kind)
            self._stages[stage] = built
            del self._lazy[stage]
            return built

    @property
    def compiled_stages(self) -> list[str]:
        """The stages compiled so far (lazy ones appear after their first use)."""
        return sorted(self._stages)

    def _compile(self, core: ov.Core, name: str, graph: ov.Model) -> ov.CompiledModel:
        try:  # OpenVINO starts the stage's inference threads here: they inherit the niceness
            niceness = self.inference_niceness
            return run_niced(niceness, core.compile_model, graph, self.device, self.config)
        except Exception as exc:
            raise ModelError(
                f"cannot compile stage {name!r} of task {self.task.kind!r} for {self.device}: {exc}"
            ) from exc

    def _requests(self, compiled: ov.CompiledModel) -> int:
        if self.jobs:
            return self.jobs
        optimal = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        if self.jobs == 0:
            return optimal
        # Measured on 2 cores (ppocr-det, THROUGHPUT: 2 streams): 2 requests reach
        # 0.89-0.91 of the bare model's limit, 4 reach 0.95: with one request per
        # stream, a stream idles while its request waits for the GIL to hand back
        # outputs.
        threads = self.config.get("INFERENCE_NUM_THREADS") or available_cores()
        return max(int(threads), 2 * optimal)

    def close(self) -> None:
        """Finish the items in flight, then release the threads and the queues."""
        if self._host is not None:
            self._host.shutdown()
            self._host = None
        for stage in self._stages.values():
            stage.close()
        self._stages.clear()
        self._lazy.clear()
        self._failed.clear()
        self._core = None

    def __enter__(self) -> Engine:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- inference -------------------------------------------------------------

    def infer(self, stage: str, inputs: Sequence[np.ndarray]) -> Outputs:
        """Run ``stage`` once per input, all inputs in the queue together (an ``InferFn``)."""
        target = self._stage(stage)
        if self.on_stage is None:
            return target.run(inputs)
        start = time.perf_counter()
        outputs = target.run(inputs)
        self.on_stage(stage, time.perf_counter() - start)
        return outputs

    def infer_many(self, calls: Mapping[str, Sequence[np.ndarray]]) -> dict[str, Outputs]:
        """``infer`` of several stages, all their requests started before any is waited
        on (``infer_all``). They start in the order of the task's graphs: a thread that
        waits for a free request holds started requests of earlier stages only, so no
        two threads wait on each other."""
        order = sorted(calls, key=lambda name: self._order.get(name, -1))
        return run_together([(name, self._stage(name)) for name in order], calls, self.on_stage)

    def predict(self, image: Image) -> Prediction:
        """Run one item on the calling thread (thread-safe). Raises ``InputError``."""
        if not self._stages:
            raise RuntimeError("Engine is not started: call start() or use it as a context manager")
        pixels, source_size = self.decode(image)
        return self.task.predict(pixels, self._task_infer, source_size)

    def submit(self, image: Image, done: Completion) -> None:
        """Queue one item; ``done(prediction or exception, pixels)`` runs on a host thread.

        Blocks while ``max_in_flight`` items are already in flight: backpressure,
        so memory stays bounded whatever the input rate.
        """
        if self._host is None:
            raise RuntimeError("Engine is not started: call start() or use it as a context manager")
        self._host.submit_item((image, done))

    def submit_batch(self, images: Sequence[Image], done: BatchCompletion) -> None:
        """Queue several items as one host task; ``done(outcomes, pixels)`` once.

        For small models, where per-item overhead would dominate: the task's
        ``predict_many`` (if it has one) sends all items through the queue in
        one ``infer`` call. Item failures stay per item. Takes one in-flight slot.
        """
        if self._host is None:
            raise RuntimeError("Engine is not started: call start() or use it as a context manager")
        self._host.submit(self._run_batch, list(images), done)

    def predict_batch(
        self, images: Sequence[Image]
    ) -> tuple[list[Outcome], list[np.ndarray | None]]:
        """Run several items on the calling thread; per-item predictions or exceptions."""
        outcomes: dict[int, Outcome] = {}
        decoded: dict[int, tuple[np.ndarray, tuple[int, int], Any]] = {}
        for i, image in enumerate(images):
            try:
                pixels, size = self.decode(image)
                # preprocessed while the pixels are in the CPU's cache (Task.preprocess)
                decoded[i] = pixels, size, self.task.preprocess(pixels) if len(images) > 1 else None
            except BaseException as exc:  # noqa: BLE001 - this item's outcome
                outcomes[i] = exc
        if len(decoded) > 1:
            try:
                pixels_, sizes, prepared = (list(x) for x in zip(*decoded.values(), strict=True))
                predictions = self.task.predict_many(pixels_, self._task_infer, sizes, prepared)
                outcomes.update(zip(decoded, predictions, strict=True))
            except Exception:  # find the item at fault, one by one
                logger.debug("predict_many failed; retrying item by item", exc_info=True)
        for i, (pixels, size, _) in decoded.items():
            if i not in outcomes:
                try:
                    outcomes[i] = self.task.predict(pixels, self._task_infer, size)
                except BaseException as exc:  # noqa: BLE001 - this item's outcome
                    outcomes[i] = exc
        found = [decoded[i][0] if i in decoded else None for i in range(len(images))]
        return [outcomes[i] for i in range(len(images))], found

    def _outcomes(self, images: list[Image]) -> tuple[list[Outcome], list[np.ndarray | None]]:
        """``predict_batch`` on a host thread: if it fails outright, that failure is
        every item's outcome, so that each item is still completed (a caller waiting
        on its completions would otherwise wait forever)."""
        try:
            return self.predict_batch(images)
        except BaseException as exc:  # noqa: BLE001 - each item's outcome
            return [exc] * len(images), [None] * len(images)

    def _run_batch(self, images: list[Image], done: BatchCompletion) -> None:
        outcomes, pixels = self._outcomes(images)
        try:
            done(outcomes, pixels)
        except Exception:  # a completion function must not kill the host thread
            logger.exception("batch completion function failed")

    def _run_items(self, items: list[tuple[Image, Completion]]) -> None:
        """``submit``'s items, gathered by a host thread: predicted together."""
        outcomes, pixels = self._outcomes([image for image, _ in items])
        for (_, done), outcome, found in zip(items, outcomes, pixels, strict=True):
            try:
                done(outcome, found)
            except BaseException:
                logger.exception("completion function failed")

    def decode(self, image: Image) -> tuple[np.ndarray, tuple[int, int]]:
        """RGB pixels (validated, or decoded from bytes) and the source (width, height)."""
        if isinstance(image, bytes | bytearray | memoryview):
            start = time.perf_counter()
            decoded = decode_image(
                bytes(image), max_pixels=self.max_image_pixels, reduce=self.task.decode_scale
            )
            if self.on_stage is not None:
                self.on_stage("decode", time.perf_counter() - start)
            return decoded
        if isinstance(image, np.ndarray) or image is None:
            pixels = as_rgb_array(image)
            return pixels, (pixels.shape[1], pixels.shape[0])
        raise InputError(
            "expected an RGB uint8 array (HxWx3) or encoded image bytes, "
            f"got {type(image).__name__}"
        )
