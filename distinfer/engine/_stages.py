"""The stages of an ``Engine``: one compiled graph each, run on an async infer queue.

``Stage`` is the plain case, one request per input. ``BatchedStage`` and
``GroupedStage`` put several inputs in a request (a static batch graph beside a
batch-1 one, or one graph whose batch is dynamic); ``BlockingStage`` runs
blocking requests on the caller's thread (the LATENCY engine). OpenVINO's
callback threads only copy outputs.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence

import numpy as np
import openvino as ov

from .._errors import ModelError


class Call:
    """One ``infer(stage, inputs)`` call: collects per-input outputs from callbacks.

    Its caller waits on a lock taken at creation and released by the last
    callback: a plain lock is the cheapest wake-up CPython has (``threading.Event``
    is Python around a ``Condition``), and a page waits once per ``infer`` call.
    """

    __slots__ = ("_done", "error", "inputs", "lock", "outputs", "remaining")

    def __init__(self, inputs: Sequence[np.ndarray]) -> None:
        self.inputs = inputs  # keeps shared input memory alive until the requests finish
        self.outputs: list[list[np.ndarray]] = [[] for _ in inputs]
        self.remaining = len(inputs)
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self._done = threading.Lock()
        if inputs:
            self._done.acquire()  # released by the last finish_one

    def finish_one(self) -> None:
        with self.lock:
            self.remaining -= 1
            last = self.remaining == 0
        if last:
            self._done.release()

    def wait(self) -> list[list[np.ndarray]]:
        """Each request's outputs, once every request has finished (once per call)."""
        with self._done:
            pass
        if self.error is not None:
            raise self.error
        return self.outputs


class Stage:
    """One compiled graph on its own ``AsyncInferQueue``."""

    def __init__(self, compiled: ov.CompiledModel, jobs: int) -> None:
        self.queue = ov.AsyncInferQueue(compiled, jobs)
        self.requests = len(self.queue)
        self.queue.set_callback(self._on_complete)
        self.num_outputs = len(compiled.outputs)
        # start_async picks an idle request; serialise callers so several host
        # threads can share one queue.
        self._submit_lock = threading.Lock()

    def _on_complete(self, request: ov.InferRequest, userdata: tuple[Call, int]) -> None:
        # Runs on an OpenVINO thread that holds the request until we return:
        # copy the outputs and leave. Never raise here (it poisons the queue).
        call, i = userdata
        try:
            call.outputs[i] = [
                request.get_output_tensor(k).data.copy() for k in range(self.num_outputs)
            ]
        except BaseException as exc:  # noqa: BLE001 - surfaced by run()
            call.error = exc
        call.finish_one()

    def start(self, tensors: Sequence[np.ndarray]) -> Call:
        """Queue one request per tensor (each with its batch dimension)."""
        call = Call(tensors)
        for i, x in enumerate(tensors):
            with self._submit_lock:
                self.queue.start_async({0: x}, (call, i), share_inputs=True)
        return call

    def run(self, inputs: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
        return self.start([np.ascontiguousarray(x[None]) for x in inputs]).wait()

    def __len__(self) -> int:
        return self.requests

    def close(self) -> None:
        self.queue.wait_all()


class BatchedStage:
    """A stage whose requests carry ``size`` inputs each, for small models.

    A request has a fixed cost beyond the model's (scheduling, a callback, a
    copy, the Python of ``start_async`` under the GIL); for a classifier of
    48x192 crops it is a large part of the whole: batch 8 runs 10,100 crops per
    second, batch 1 5,500 (PP-OCR's orientation classifier, 2 cores). Full groups
    of ``size`` go to the graph compiled at that batch. The rest, when it is at
    least half a group, rides in one more batched request padded with zeros (one
    request of 8 costs what 4.4 single ones do, before their host cost); a
    smaller rest goes to the batch-1 graph, so one input never pays for ``size``.
    """

    def __init__(self, batched: Stage, single: Stage, size: int) -> None:
        self.batched, self.single, self.size = batched, single, size

    def run(self, inputs: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
        count = len(inputs)
        in_batches = count - count % self.size
        if 2 * (count - in_batches) >= self.size:
            in_batches = count  # the rest in one padded request
        groups = self.batched.start(
            [self._group(inputs[k : k + self.size]) for k in range(0, in_batches, self.size)]
        )
        rest = self.single.start([np.ascontiguousarray(x[None]) for x in inputs[in_batches:]])
        outputs = [
            [out[j : j + 1] for out in group] for group in groups.wait() for j in range(self.size)
        ]
        return outputs[:in_batches] + rest.wait()

    def _group(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        if len(inputs) == self.size:
            return np.stack(inputs)
        group = np.zeros((self.size, *inputs[0].shape), inputs[0].dtype)
        np.stack(inputs, out=group[: len(inputs)])
        return group

    def __len__(self) -> int:
        return max(len(self.batched), len(self.single))

    def close(self) -> None:
        self.batched.close()
        self.single.close()


class BlockingStage:
    """One compiled graph run with blocking ``infer`` calls on the caller's thread.

    For synchronous use (LATENCY hint: one request spans all cores): no
    callback thread to hop through, the GIL is released while it runs.
    """

    def __init__(self, compiled: ov.CompiledModel, jobs: int) -> None:
        self.requests = jobs
        self.num_outputs = len(compiled.outputs)
        self._idle: queue.SimpleQueue[ov.InferRequest] = queue.SimpleQueue()
        for _ in range(jobs):
            self._idle.put(compiled.create_infer_request())

    def __len__(self) -> int:
        return self.requests

    def run(self, inputs: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
        request = self._idle.get()
        try:
            outputs = []
            for x in inputs:
                request.infer({0: np.ascontiguousarray(x[None])}, share_inputs=True)
                outputs.append(
                    [request.get_output_tensor(k).data.copy() for k in range(self.num_outputs)]
                )
            return outputs
        finally:
            self._idle.put(request)

    def close(self) -> None:
        pass


class GroupedStage:
    """A stage whose graph takes any batch: the inputs of one ``run`` go in requests of
    up to ``size`` each (stacked), not one request each.

    A request costs the host the same whatever it carries (scheduling, the Python
    of ``start_async``, a callback, an output copy, all under the GIL); a page's
    text lines in a few requests instead of one each cut that per page. On CPU a
    line costs the same in a batch as alone (PP-OCR's recogniser at 320 pixels:
    6.7-7.0 ms against 6.9 ms of CPU, 2 cores).
    """

    def __init__(self, stage: Stage, size: int) -> None:
        self.stage, self.size = stage, size

    def run(self, inputs: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
        groups = [np.stack(inputs[k : k + self.size]) for k in range(0, len(inputs), self.size)]
        return [
            [out[j : j + 1] for out in outputs]
            for group, outputs in zip(groups, self.stage.start(groups).wait(), strict=True)
            for j in range(len(group))
        ]

    def __len__(self) -> int:
        return len(self.stage)

    def close(self) -> None:
        self.stage.close()


AnyStage = Stage | BatchedStage | GroupedStage | BlockingStage


def has_dynamic_batch(graph: ov.Model) -> bool:
    """Whether the one input of ``graph`` has a dynamic first (batch) dimension only."""
    if len(graph.inputs) != 1:
        return False
    shape = graph.inputs[0].get_partial_shape()
    if shape.rank.is_dynamic or len(shape) < 2:
        return False
    return shape[0].is_dynamic and all(shape[k].is_static for k in range(1, len(shape)))


def with_batch(graph: ov.Model, size: int) -> ov.Model:
    """``graph`` with a static batch of ``size`` on its one input (a copy)."""
    if len(graph.inputs) != 1:
        raise ModelError(f"batching needs a graph with one input, this one has {len(graph.inputs)}")
    shape = graph.inputs[0].get_partial_shape()
    if shape.rank.is_dynamic or len(shape) < 1:
        raise ModelError(f"batching needs an input of known rank, got {shape}")
    shape[0] = size
    batched = graph.clone()
    try:
        batched.reshape({batched.inputs[0]: shape})
    except Exception as exc:
        raise ModelError(
            f"this graph cannot run with batch {size} ({exc}); set model.batch: 1"
        ) from exc
    return batched
