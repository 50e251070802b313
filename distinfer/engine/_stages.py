"""The stages of an ``Engine``: one compiled graph each, on a pool of async infer requests.

``Stage`` is the plain case, one request per input. ``BatchedStage`` and
``GroupedStage`` put several inputs in a request (a static batch graph beside a
batch-1 one, or one graph whose batch is dynamic); ``BlockingStage`` runs
blocking requests on the caller's thread (the LATENCY engine). Each stage's
``begin`` starts an ``infer`` call's requests and returns the ``Pending`` call to
wait on, so that an engine can start several stages' requests before waiting on
any (``Engine.infer_many``); ``run`` is both at once. No Python runs on
OpenVINO's threads.
"""

from __future__ import annotations

import collections
import contextlib
import queue
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import openvino as ov

from .._errors import ModelError

#: For each input of an ``infer`` call, the graph's outputs in output order.
Outputs = list[list[np.ndarray]]


class Call:
    """The requests of one ``infer(stage, inputs)`` call; ``wait`` collects their outputs."""

    __slots__ = ("error", "inputs", "outputs", "pending", "stage")

    def __init__(self, stage: Stage, inputs: Sequence[np.ndarray]) -> None:
        self.stage = stage
        self.inputs = inputs  # keeps shared input memory alive until the requests finish
        self.outputs: Outputs = [[] for _ in inputs]
        self.pending: collections.deque[tuple[ov.InferRequest, int]] = collections.deque()
        self.error: BaseException | None = None

    def collect_one(self) -> ov.InferRequest:
        """Wait for the oldest pending request and keep its outputs; the request, now free."""
        request, i = self.pending.popleft()
        try:
            request.wait()
            self.outputs[i] = [
                request.get_output_tensor(k).data.copy() for k in range(self.stage.num_outputs)
            ]
        except BaseException as exc:  # noqa: BLE001 - raised by wait(), once all are back
            self.error = self.error or exc
        return request

    def wait(self) -> Outputs:
        """Each request's outputs, once every request has finished and gone back to
        its pool (call it once, and always: an unwaited call keeps its requests)."""
        while self.pending:
            self.stage.idle.put(self.collect_one())
        if self.error is not None:
            raise self.error
        return self.outputs


class Pending:
    """An ``infer`` call whose requests are started: ``wait`` gives each input's outputs.

    ``calls`` are the started requests (one ``Call`` per pool the stage drew on) and
    ``finish`` turns their outputs into the inputs' (splitting batched requests).
    Wait once, and always: the requests go back to their pools only then.
    """

    __slots__ = ("calls", "finish")

    def __init__(
        self, calls: Sequence[Call], finish: Callable[[list[Outputs]], Outputs] | None = None
    ) -> None:
        self.calls = calls
        self.finish = finish

    def wait(self) -> Outputs:
        results = wait_all(self.calls)
        return self.finish(results) if self.finish is not None else results[0]


def wait_all(
    calls: Sequence[Call | Pending], each: Callable[[int], None] | None = None
) -> list[Outputs]:
    """Wait on every call in turn, even after one fails (each frees its requests only
    when waited on), then raise the first failure; ``each(i)`` after call ``i``."""
    results: list[Outputs] = []
    error: BaseException | None = None
    for i, call in enumerate(calls):
        try:
            results.append(call.wait())
        except BaseException as exc:  # noqa: BLE001 - raised once all are back
            error = error or exc
        if each is not None:
            each(i)
    if error is not None:
        raise error
    return results


def abandon(started: Sequence[Call | Pending]) -> None:
    """Wait out the calls started before starting another failed: their requests go back."""
    with contextlib.suppress(BaseException):
        wait_all(started)


class _Begins:
    """``run`` for a stage that can ``begin``: start the requests, then wait on them."""

    def begin(self, inputs: Sequence[np.ndarray]) -> Pending:
        raise NotImplementedError

    def run(self, inputs: Sequence[np.ndarray]) -> Outputs:
        return self.begin(inputs).wait()


class Stage(_Begins):
    """One compiled graph with a pool of infer requests.

    No Python runs on OpenVINO's threads: the host thread that started a call
    waits on its requests (``InferRequest.wait`` releases the GIL) and copies
    their outputs, so an inference thread never waits for the GIL and a finished
    request never wakes Python while holding it. (Before, with
    ``AsyncInferQueue`` and a completion callback, each request took the GIL on an
    OpenVINO thread; ``distinfer bench --modes host`` showed those callbacks among
    the frames that held it most.) A call never blocks for a free request while
    it holds started ones, which could deadlock threads that each hold part of
    the pool: it reuses its own oldest instead.
    """

    def __init__(self, compiled: ov.CompiledModel, jobs: int) -> None:
        self.requests = jobs
        self.idle: queue.SimpleQueue[ov.InferRequest] = queue.SimpleQueue()
        for _ in range(jobs):
            self.idle.put(compiled.create_infer_request())
        self.num_outputs = len(compiled.outputs)

    def start(self, tensors: Sequence[np.ndarray]) -> Call:
        """Start one request per tensor (each with its batch dimension)."""
        call = Call(self, tensors)
        try:
            for i, x in enumerate(tensors):
                request = self._free_request(call)
                try:
                    request.set_input_tensor(ov.Tensor(x, shared_memory=True))
                    request.start_async()
                except BaseException:
                    self.idle.put(request)
                    raise
                call.pending.append((request, i))
        except BaseException:
            abandon([call])  # the requests started go back to the pool
            raise
        return call

    def _free_request(self, call: Call) -> ov.InferRequest:
        if not call.pending:
            return self.idle.get()
        try:
            return self.idle.get_nowait()
        except queue.Empty:
            return call.collect_one()

    def begin(self, inputs: Sequence[np.ndarray]) -> Pending:
        return Pending([self.start([np.ascontiguousarray(x[None]) for x in inputs])])

    def __len__(self) -> int:
        return self.requests

    def close(self) -> None:
        """Wait until every request is back in the pool (none is running)."""
        back = [self.idle.get() for _ in range(self.requests)]
        for request in back:
            self.idle.put(request)


class BatchedStage(_Begins):
    """A stage whose requests carry ``size`` inputs each, for small models.

    A request has a fixed cost beyond the model's (scheduling, a wait, a copy,
    the Python of ``start_async`` under the GIL); for a classifier of
    48x192 crops it is a large part of the whole: batch 8 runs 10,100 crops per
    second, batch 1 5,500 (PP-OCR's orientation classifier, 2 cores). Full groups
    of ``size`` go to the graph compiled at that batch. The rest, when it is at
    least half a group, rides in one more batched request padded with zeros (one
    request of 8 costs what 4.4 single ones do, before their host cost); a
    smaller rest goes to the batch-1 graph, so one input never pays for ``size``.
    """

    def __init__(self, batched: Stage, single: Stage, size: int) -> None:
        self.batched, self.single, self.size = batched, single, size

    def begin(self, inputs: Sequence[np.ndarray]) -> Pending:
        size = self.size
        count = len(inputs)
        in_batches = count - count % size
        if 2 * (count - in_batches) >= size:
            in_batches = count  # the rest in one padded request
        groups = self.batched.start(
            [self._group(inputs[k : k + size]) for k in range(0, in_batches, size)]
        )
        try:  # the batched graph's requests first, always: no two calls wait on each other
            rest = self.single.start([np.ascontiguousarray(x[None]) for x in inputs[in_batches:]])
        except BaseException:
            abandon([groups])
            raise

        def finish(results: list[Outputs]) -> Outputs:
            grouped, single = results
            split = [[out[j : j + 1] for out in group] for group in grouped for j in range(size)]
            return split[:in_batches] + single

        return Pending([groups, rest], finish)

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

    For synchronous use (LATENCY hint: one request spans all cores): nothing
    to start and wait for, the GIL is released while it runs.
    """

    def __init__(self, compiled: ov.CompiledModel, jobs: int) -> None:
        self.requests = jobs
        self.num_outputs = len(compiled.outputs)
        self._idle: queue.SimpleQueue[ov.InferRequest] = queue.SimpleQueue()
        for _ in range(jobs):
            self._idle.put(compiled.create_infer_request())

    def __len__(self) -> int:
        return self.requests

    def begin(self, inputs: Sequence[np.ndarray]) -> Pending:
        """Runs the requests now: the call is done when it returns."""
        outputs = self.run(inputs)
        return Pending([], lambda _: outputs)

    def run(self, inputs: Sequence[np.ndarray]) -> Outputs:
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


class GroupedStage(_Begins):
    """A stage whose graph takes any batch: the inputs of one ``run`` go in requests of
    up to ``size`` each (stacked), not one request each.

    A request costs the host the same whatever it carries (scheduling, the Python
    of ``start_async``, a wait, an output copy, all under the GIL); a page's
    text lines in a few requests instead of one each cut that per page. On CPU a
    line costs the same in a batch as alone (PP-OCR's recogniser at 320 pixels:
    6.7-7.0 ms against 6.9 ms of CPU, 2 cores).
    """

    def __init__(self, stage: Stage, size: int) -> None:
        self.stage, self.size = stage, size

    def begin(self, inputs: Sequence[np.ndarray]) -> Pending:
        groups = [np.stack(inputs[k : k + self.size]) for k in range(0, len(inputs), self.size)]

        def finish(results: list[Outputs]) -> Outputs:
            return [
                [out[j : j + 1] for out in outputs]
                for group, outputs in zip(groups, results[0], strict=True)
                for j in range(len(group))
            ]

        return Pending([self.stage.start(groups)], finish)

    def __len__(self) -> int:
        return len(self.stage)

    def close(self) -> None:
        self.stage.close()


def run_together(
    stages: Sequence[tuple[str, AnyStage]],
    calls: Mapping[str, Sequence[np.ndarray]],
    on_stage: Callable[[str, float], None] | None = None,
) -> dict[str, Outputs]:
    """``calls[name]`` on each of ``stages``, all started (in that order) before any is
    waited on; ``on_stage(name, seconds)`` as each is done, timed from the start.
    The outputs come in the order of ``calls``."""
    start = time.perf_counter()
    started: list[Pending] = []
    try:
        for name, stage in stages:
            started.append(stage.begin(calls[name]))
    except BaseException:
        abandon(started)
        raise
    outputs = wait_all(
        started,
        None if on_stage is None else lambda i: on_stage(stages[i][0], time.perf_counter() - start),
    )
    found = {name: out for (name, _), out in zip(stages, outputs, strict=True)}
    return {name: found[name] for name in calls}  # in the order asked


class TaskInfer:
    """The ``infer`` an engine passes its task: ``one(stage, inputs)`` when called,
    with ``many(calls)`` beside it for ``infer_all`` (``Engine.infer`` and
    ``Engine.infer_many``)."""

    __slots__ = ("many", "one")

    def __init__(
        self,
        one: Callable[[str, Sequence[np.ndarray]], Outputs],
        many: Callable[[Mapping[str, Sequence[np.ndarray]]], dict[str, Outputs]],
    ) -> None:
        self.one, self.many = one, many

    def __call__(self, stage: str, inputs: Sequence[np.ndarray]) -> Outputs:
        return self.one(stage, inputs)


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
