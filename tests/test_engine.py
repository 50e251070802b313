from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import openvino as ov
import pytest
from _tasks import SIZE, BatchedMeanColourTask, MeanColourTask, mean_colour_graph, solid

from distinfer import InputError, ModelError, Prediction
from distinfer.bench._host import _thread_times
from distinfer.distributed._driver import actor_openvino_config
from distinfer.engine._engine import IN_FLIGHT_PER_THREAD, Engine, with_batch
from distinfer.engine._stages import Call, Stage
from distinfer.engine._threads import MAX_NICENESS, available_cores
from distinfer.models import InferFn, infer_all


def test_predict_runs_the_graph_and_reports_source_size() -> None:
    with Engine(MeanColourTask()) as engine:
        p = engine.predict(solid((200, 10, 30), (40, 20)))
    np.testing.assert_allclose(p.tensors["mean"], [200, 10, 30])
    assert (p.width, p.height) == (40, 20)
    assert p.annotations[0].label == "red"


def test_predict_decodes_encoded_bytes() -> None:
    ok, jpeg = cv2.imencode(".png", cv2.cvtColor(solid((0, 0, 255), (16, 8)), cv2.COLOR_RGB2BGR))
    assert ok
    with Engine(MeanColourTask()) as engine:
        p = engine.predict(jpeg.tobytes())
    assert p.annotations[0].label == "blue"
    assert (p.width, p.height) == (16, 8)


def test_queue_is_sized_to_the_cores_by_default_and_zero_means_optimal() -> None:
    with Engine(MeanColourTask(), jobs=0) as engine:
        optimal = engine.jobs  # OPTIMAL_NUMBER_OF_INFER_REQUESTS
        assert optimal is not None and optimal >= 1
        # a thread per request, each with its share of the items in flight
        assert engine.max_in_flight == IN_FLIGHT_PER_THREAD * optimal
    with Engine(MeanColourTask()) as engine:  # a core each, two per stream at least
        assert engine.jobs == max(available_cores(), 2 * optimal)
        assert engine.max_in_flight == IN_FLIGHT_PER_THREAD * engine.jobs
    one_thread = {"INFERENCE_NUM_THREADS": 1}  # an actor's share of a node's cores
    with Engine(MeanColourTask(), jobs=0, config=one_thread) as engine:
        optimal = engine.jobs
    with Engine(MeanColourTask(), config=one_thread) as engine:
        assert optimal is not None and engine.jobs == 2 * optimal


def test_submit_overlaps_items_and_bounds_what_is_in_flight() -> None:
    # Each item waits in the task for another: the items complete only if the
    # engine runs two at once (a barrier, not a delay, so a busy machine cannot
    # make them run one after the other). One item per thread: gather=1.
    together = threading.Barrier(2)

    def two_at_once(image: np.ndarray) -> float:
        together.wait(timeout=10)
        return 0.0

    task = MeanColourTask(delay_s=two_at_once)
    outcomes: list[Prediction | BaseException] = []
    lock = threading.Lock()

    def done(outcome: Prediction | BaseException, pixels: object) -> None:
        with lock:
            outcomes.append(outcome)

    with Engine(task, jobs=2, max_in_flight=3, gather=1) as engine:
        for i in range(30):
            engine.submit(solid((i, 0, 0)), done)
    assert len(outcomes) == 30
    assert all(isinstance(o, Prediction) for o in outcomes)
    assert task.max_running == 2  # overlapped, one per host thread
    assert all(name.startswith("distinfer-host") for name in task.threads)


def test_items_that_queue_up_are_gathered_into_one_predict_many() -> None:
    # The only host thread is held by the first item; the next ones queue behind
    # it and are taken together, at most ``gather`` at a time, each with its outcome.
    first = threading.Event()
    release = threading.Event()

    def hold_the_first(image: np.ndarray) -> float:
        if int(image[0, 0, 0]) == 0:
            first.set()
            release.wait(10)
        return 0.0

    task = MeanColourTask(delay_s=hold_the_first)
    calls: list[int] = []
    predict_many = task.predict_many

    def counted(
        images: Sequence[np.ndarray], infer: Any, sizes: Any, prepared: Any = None
    ) -> list[Prediction]:
        calls.append(len(images))
        return predict_many(images, infer, sizes, prepared)

    task.predict_many = counted  # type: ignore[method-assign]
    outcomes: dict[int, Prediction | BaseException] = {}

    def done(i: int) -> Callable[[Prediction | BaseException, object], None]:
        return lambda outcome, pixels: outcomes.__setitem__(i, outcome)

    with Engine(task, jobs=1, gather=3, max_in_flight=8) as engine:
        engine.submit(solid((0, 0, 0)), done(0))
        assert first.wait(10)
        for i in range(1, 7):
            engine.submit(solid((i, 0, 0)), done(i))
        engine.submit(b"not an image", done(7))
        release.set()
    assert calls == [3, 3]  # items 1-3 and 4-6; item 0 alone, then 7 alone, not decoded
    assert isinstance(outcomes[7], InputError)
    for i in range(7):  # each item got its own prediction
        found = outcomes[i]
        assert isinstance(found, Prediction)
        np.testing.assert_allclose(found.tensors["mean"], [i, 0, 0])


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((8, 8, 3), np.float32), "uint8"),
        (np.zeros((8, 8, 4), np.uint8), "3"),
        (np.zeros((8, 8), np.uint8), "HxWx3"),
        (np.zeros((0, 8, 3), np.uint8), "empty"),
        (b"", "empty"),
        (b"hello, this is text and not an image", "not an image"),
        ("a string", "str"),
    ],
)
def test_bad_input_raises_input_error_naming_the_problem(bad: object, message: str) -> None:
    with Engine(MeanColourTask()) as engine, pytest.raises(InputError, match=message) as info:
        engine.predict(bad)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)


def test_truncated_jpeg_is_an_input_error_and_costs_only_itself() -> None:
    ok, jpeg = cv2.imencode(
        ".jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)
    )
    assert ok
    outcomes: dict[int, object] = {}

    def done_for(i: int):  # type: ignore[no-untyped-def]
        return lambda outcome, pixels: outcomes.__setitem__(i, outcome)

    with Engine(MeanColourTask()) as engine:
        engine.submit(jpeg.tobytes()[: len(jpeg) // 2], done_for(0))
        engine.submit(jpeg.tobytes(), done_for(1))
    assert isinstance(outcomes[0], InputError)
    assert "truncated" in str(outcomes[0])
    assert isinstance(outcomes[1], Prediction)


def test_latency_engine_runs_one_blocking_request_on_the_callers_thread() -> None:
    task = MeanColourTask()
    with Engine(task, latency=True) as engine:
        assert engine.config["PERFORMANCE_HINT"] == "LATENCY"
        assert engine.jobs == 1
        p = engine.predict(solid((0, 250, 0)))
        assert p.annotations[0].label == "green"
    assert task.threads == {threading.current_thread().name}


def _threads() -> set[int]:
    return {int(t.name) for t in Path("/proc/self/task").iterdir()}


@pytest.mark.skipif(sys.platform != "linux", reason="niceness per thread is Linux's")
def test_openvinos_inference_threads_run_nicer_than_the_host_threads() -> None:
    def niceness(tid: int) -> int | None:
        try:
            return os.getpriority(os.PRIO_PROCESS, tid)
        except OSError:
            return None  # the thread ended meanwhile

    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    nicer = min(MAX_NICENESS, base + 7)
    before = _threads()
    with Engine(MeanColourTask(), inference_niceness=0) as engine:
        engine.predict(solid((1, 2, 3)))
        assert {niceness(t) for t in _threads() - before} - {None} == {base}  # as before
    before = _threads()
    with Engine(MeanColourTask(), inference_niceness=7) as engine:
        python = {t.native_id for t in threading.enumerate()}
        niced = {t for t in _threads() - before - python if niceness(t) == nicer}
        assert niced, "compiling started no thread that runs nicer"
        assert {niceness(t) for t in python & _threads()} - {None} == {base}  # host too
        running = _thread_times()
        for _ in range(20):
            engine.predict(solid((200, 10, 30)))
        ran = _thread_times()
        if running is not None and ran is not None:  # else no schedstat on this system
            ran_niced = {
                t for t in niced & running.keys() & ran.keys() if ran[t][0] != running[t][0]
            }
            assert ran_niced, "the inference ran on no niced thread"
    with Engine(MeanColourTask(), latency=True, inference_niceness=7) as engine:
        assert engine.inference_niceness == 0  # blocking requests: nothing runs between
    with pytest.raises(ValueError, match="inference_niceness"):
        Engine(MeanColourTask(), inference_niceness=-1)


def test_a_batch_is_one_infer_call_and_failures_stay_per_item() -> None:
    task = BatchedMeanColourTask()
    images = [solid((i, 0, 0)) for i in (1, 2, 3)]
    with Engine(task) as engine:
        outcomes, pixels = engine.predict_batch([*images, b"junk"])
        assert task.calls == [3]  # the three good images in one call
        assert [o.tensors["mean"][0] for o in outcomes[:3]] == pytest.approx([1, 2, 3])  # type: ignore[union-attr]
        assert isinstance(outcomes[3], InputError) and pixels[3] is None

        poisoned = [solid((1, 0, 0)), solid((BatchedMeanColourTask.POISON, 0, 0))]
        got: list[list[object]] = []
        engine.submit_batch(poisoned, lambda outs, px: got.append(outs))
    (outs,) = got
    assert isinstance(outs[0], Prediction)  # retried alone after the batch failed
    assert isinstance(outs[1], ValueError) and "poisoned image" in str(outs[1])


class _PreprocessingTask(BatchedMeanColourTask):
    """Records the ``prepared`` its ``predict_many`` gets, and on which pixels."""

    def __init__(self) -> None:
        super().__init__()
        self.prepared: list[object] = []

    def preprocess(self, image: np.ndarray) -> tuple[int, int]:
        if int(image[0, 0, 0]) == 99:
            raise ValueError("cannot preprocess image 99")
        return int(image[0, 0, 0]), id(image)

    def predict_many(
        self,
        images: list[np.ndarray],
        infer: InferFn,
        source_sizes: list[tuple[int, int]],
        prepared: list[Any] | None = None,
    ) -> list[Prediction]:
        assert prepared is not None
        self.prepared.append([(p[0], p[1] == id(i)) for p, i in zip(prepared, images, strict=True)])
        return super().predict_many(images, infer, source_sizes, prepared)


def test_each_item_is_preprocessed_as_it_is_decoded_and_predict_many_gets_it() -> None:
    task = _PreprocessingTask()
    with Engine(task) as engine:
        items = [solid((1, 0, 0)), b"junk", solid((99, 0, 0)), solid((3, 0, 0))]
        outcomes, pixels = engine.predict_batch(items)
    # the items decoded and preprocessed, each with its own pixels' result, in order
    assert task.prepared == [[(1, True), (3, True)]]
    assert isinstance(outcomes[1], InputError) and pixels[1] is None and pixels[2] is None
    assert isinstance(outcomes[2], ValueError) and "image 99" in str(outcomes[2])  # its own
    assert [o.tensors["mean"][0] for o in (outcomes[0], outcomes[3])] == pytest.approx([1, 3])  # type: ignore[union-attr]


@pytest.mark.parametrize("count", [0, 1, 3, 4, 9])
def test_batched_requests_give_every_input_its_own_outputs(count: int) -> None:
    rng = np.random.default_rng(count)
    images = [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(count)]
    with Engine(MeanColourTask(), batch=4) as engine:
        assert engine.batch_sizes == {"mean": 4}
        outputs = engine.infer("mean", images)
    assert [[o.shape for o in out] for out in outputs] == [[(1, 3)]] * count
    for image, out in zip(images, outputs, strict=True):
        np.testing.assert_allclose(out[0][0], image.reshape(-1, 3).mean(axis=0), rtol=1e-6)


def test_a_tasks_batch_sizes_are_its_default_and_the_latency_engine_never_batches() -> None:
    task = MeanColourTask()
    task.batch_sizes = {"mean": 2}  # type: ignore[attr-defined]
    with Engine(task) as engine:
        assert engine.batch_sizes == {"mean": 2}
        assert engine.predict(solid((0, 200, 0))).annotations[0].label == "green"
    with Engine(task, latency=True) as engine:
        assert engine.batch_sizes == {}


class _AnyBatchTask(MeanColourTask):
    """``mean`` takes any batch and answers, per input, the mean colour and the number
    of inputs its request carried."""

    def graphs(self) -> Mapping[str, ov.Model]:
        import openvino.opset13 as ops

        x = ops.parameter([-1, SIZE, SIZE, 3], ov.Type.u8, name="image")
        mean = ops.reduce_mean(ops.convert(x, ov.Type.f32), ops.constant(np.array([1, 2])), False)
        batch = ops.convert(
            ops.gather(ops.shape_of(x), ops.constant([0]), ops.constant(0)), ov.Type.f32
        )
        size = ops.broadcast(ops.unsqueeze(batch, ops.constant(1)), ops.shape_of(mean))
        return {"mean": ov.Model([ops.result(mean), ops.result(size)], [x], "any_batch")}


@pytest.mark.parametrize("count", [0, 1, 4, 10])
def test_a_graph_of_any_batch_takes_an_infer_calls_inputs_in_requests_of_up_to_n(
    count: int,
) -> None:
    task = _AnyBatchTask()
    task.batch_sizes = {"mean": 4}  # type: ignore[attr-defined]
    rng = np.random.default_rng(count)
    images = [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(count)]
    with Engine(task) as engine:
        assert engine.batch_sizes == {"mean": 4}
        outputs = engine.infer("mean", images)
    assert [out[1][0, 0] for out in outputs] == [4] * (count // 4 * 4) + [count % 4] * (count % 4)
    for image, out in zip(images, outputs, strict=True):
        assert out[0].shape == (1, 3)
        np.testing.assert_allclose(out[0][0], image.reshape(-1, 3).mean(axis=0), rtol=1e-6)
    with Engine(task, latency=True) as engine:  # one input a request
        assert [out[1][0, 0] for out in engine.infer("mean", images)] == [1] * count


class _StaticBatchTask(_AnyBatchTask):
    """``_AnyBatchTask`` with a static batch of 1: the engine compiles it at batch 4 too."""

    def graphs(self) -> Mapping[str, ov.Model]:
        (graph,) = super().graphs().values()
        graph.reshape({graph.inputs[0]: ov.PartialShape([1, SIZE, SIZE, 3])})
        return {"mean": graph}


@pytest.mark.parametrize(
    ("count", "request_sizes"),
    [(1, [1]), (2, [4, 4]), (3, [4] * 3), (5, [4] * 4 + [1]), (6, [4] * 6), (9, [4] * 8 + [1])],
)
def test_a_static_batch_takes_a_rest_of_half_a_batch_or_more_in_one_padded_request(
    count: int, request_sizes: list[int]
) -> None:
    task = _StaticBatchTask()
    task.batch_sizes = {"mean": 4}  # type: ignore[attr-defined]
    rng = np.random.default_rng(count)
    images = [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(count)]
    with Engine(task) as engine:
        outputs = engine.infer("mean", images)
    assert [out[1][0, 0] for out in outputs] == request_sizes  # the batch its request carried
    for image, out in zip(images, outputs, strict=True):
        np.testing.assert_allclose(out[0][0], image.reshape(-1, 3).mean(axis=0), rtol=1e-6)


def test_a_graph_that_cannot_batch_says_so() -> None:
    import openvino as ov
    import openvino.opset13 as ops

    a = ops.parameter([1, 3], ov.Type.f32, name="a")
    b = ops.parameter([1, 3], ov.Type.f32, name="b")
    two_inputs = ov.Model([ops.result(ops.add(a, b))], [a, b], "two")
    with pytest.raises(ModelError, match="one input"):
        with_batch(two_inputs, 4)
    with pytest.raises(ValueError, match="batch must be >= 1"):
        Engine(MeanColourTask(), batch=0)


class _LazyTask(MeanColourTask):
    """``mean`` compiles at start; ``spare`` and ``broken`` on first use."""

    lazy_stages = frozenset({"spare", "broken"})

    def graphs(self) -> Mapping[str, ov.Model]:
        return {name: mean_colour_graph() for name in ("mean", "spare", "broken")}


def test_lazy_stages_compile_once_on_first_use_and_a_failure_is_kept() -> None:
    compiles: list[str] = []
    with Engine(_LazyTask()) as engine:
        assert engine.compiled_stages == ["mean"]
        real = engine._compile

        def compile_or_fail(core: ov.Core, name: str, graph: ov.Model) -> ov.CompiledModel:
            compiles.append(name)
            if name == "broken":
                raise ModelError("cannot compile stage 'broken'")
            return real(core, name, graph)

        engine._compile = compile_or_fail  # type: ignore[method-assign]
        assert engine.predict(solid((0, 0, 250))).annotations[0].label == "blue"
        assert compiles == []
        images = [np.full((SIZE, SIZE, 3), k, np.uint8) for k in range(8)]
        with ThreadPoolExecutor(8) as pool:  # eight first uses at once: one compile
            outputs = list(pool.map(lambda im: engine.infer("spare", [im])[0][0], images))
        assert compiles == ["spare"]
        assert engine.compiled_stages == ["mean", "spare"]
        assert [float(out[0, 0]) for out in outputs] == list(range(8))
        for _ in range(2):
            with pytest.raises(ModelError, match="broken"):
                engine.infer("broken", images[:1])
        assert compiles == ["spare", "broken"]  # not tried again
        with pytest.raises(ModelError, match=r"no stage 'nope' \(stages: \['broken', 'mean'"):
            engine.infer("nope", images[:1])


def test_a_task_cannot_make_every_stage_lazy() -> None:
    task = MeanColourTask()
    task.lazy_stages = frozenset({"mean"})  # type: ignore[attr-defined]
    with pytest.raises(ModelError, match="every stage lazy"):
        Engine(task).start()


def test_several_actors_on_a_node_each_compile_their_share_of_cores_unpinned() -> None:
    # OpenVINO pins its threads by default, and every instance on a node pins to
    # the same first cores: several actors per node must not.
    config = actor_openvino_config({}, actors_per_node=2, cpus=2)
    compiled = ov.Core().compile_model(
        mean_colour_graph(), "CPU", {"PERFORMANCE_HINT": "THROUGHPUT", **config}
    )
    assert compiled.get_property("ENABLE_CPU_PINNING") is False
    assert compiled.get_property("INFERENCE_NUM_THREADS") == 1
    with Engine(MeanColourTask(), config=config) as engine:  # and an engine runs with it
        assert engine.predict(solid((10, 20, 30))).annotations
    alone = actor_openvino_config({"NUM_STREAMS": 1}, actors_per_node=1, cpus=2)
    assert alone == {"NUM_STREAMS": 1}  # one actor: OpenVINO's defaults, the user's settings
    mine = actor_openvino_config({"ENABLE_CPU_PINNING": True}, actors_per_node=2, cpus=2)
    assert mine["ENABLE_CPU_PINNING"] is True  # the config file wins


def test_every_submitted_item_is_completed_even_when_its_batch_fails_outright(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    got: list[Prediction | BaseException] = []
    with Engine(MeanColourTask(), jobs=1) as engine:

        def broken(images: Sequence[object]) -> None:
            raise RuntimeError("broken batch")

        monkeypatch.setattr(engine, "predict_batch", broken)
        for i in range(5):
            engine.submit(solid((i, 0, 0)), lambda outcome, pixels: got.append(outcome))
        # a unit, as an inference actor submits it: one completion with every item's outcome
        engine.submit_batch(
            [solid((9, 0, 0)), solid((8, 0, 0))], lambda outcomes, pixels: got.extend(outcomes)
        )
    assert len(got) == 7  # no completion lost: a Deployment or an actor would wait forever
    assert all(isinstance(o, RuntimeError) and "broken batch" in str(o) for o in got)


def test_calls_larger_than_the_request_pool_from_several_threads_all_finish() -> None:
    # Two requests, four threads each asking for six at once: a call that holds
    # started requests reuses its own instead of waiting for the pool, so no two
    # calls can wait on each other.
    with Engine(MeanColourTask(), jobs=2) as engine:
        batches = [[solid((t * 10 + i, 0, 0), (SIZE, SIZE)) for i in range(6)] for t in range(4)]
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda batch: engine.infer("mean", batch), batches))
    for t, outputs in enumerate(results):
        means = [float(np.asarray(out[0]).reshape(-1)[0]) for out in outputs]
        assert means == [t * 10 + i for i in range(6)]


class _TwoStageTask(MeanColourTask):
    """Two stages, ``a`` and ``b``, each the mean colour."""

    def graphs(self) -> Mapping[str, ov.Model]:
        return {"a": mean_colour_graph(), "b": mean_colour_graph()}


def _means(outputs: list[list[np.ndarray]]) -> list[float]:
    return [float(np.asarray(out[0]).reshape(-1)[0]) for out in outputs]


def test_infer_many_starts_every_stages_requests_before_waiting_on_any(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events: list[tuple[str, str]] = []
    with Engine(_TwoStageTask(), jobs=2) as engine:
        names = {id(engine._stages[name]): name for name in ("a", "b")}
        start, wait = Stage.start, Call.wait

        def started(stage: Stage, tensors: Sequence[np.ndarray]) -> Call:
            events.append(("start", names[id(stage)]))
            return start(stage, tensors)

        def waited(call: Call) -> list[list[np.ndarray]]:
            events.append(("wait", names[id(call.stage)]))
            return wait(call)

        monkeypatch.setattr(Stage, "start", started)
        monkeypatch.setattr(Call, "wait", waited)
        seen: list[str] = []
        engine.on_stage = lambda stage, seconds: seen.append(stage)
        found = engine.infer_many(
            {
                "b": [solid((7, 0, 0), (SIZE, SIZE))],
                "a": [solid((i, 0, 0), (SIZE, SIZE)) for i in (1, 2)],
            }
        )
    # in the order of the task's graphs, whatever the order asked, each timed once
    assert events == [("start", "a"), ("start", "b"), ("wait", "a"), ("wait", "b")]
    assert seen == ["a", "b"]
    assert list(found) == ["b", "a"]
    assert _means(found["b"]) == [7] and _means(found["a"]) == [1, 2]


def test_infer_all_runs_each_stage_in_turn_through_a_plain_function() -> None:
    calls: list[tuple[str, int]] = []

    def infer(stage: str, inputs: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
        calls.append((stage, len(inputs)))
        return [[np.full((1, 3), len(stage), np.float32)] for _ in inputs]

    found = infer_all(
        infer,
        {
            "rec320": [solid((0, 0, 0), (SIZE, SIZE))] * 2,
            "rec640": [solid((0, 0, 0), (SIZE, SIZE))],
        },
    )
    assert calls == [("rec320", 2), ("rec640", 1)]
    assert [len(found[s]) for s in ("rec320", "rec640")] == [2, 1]


def test_infer_many_from_several_threads_with_one_request_a_stage_all_finish() -> None:
    # One request a stage; four threads each ask both stages for three inputs,
    # half of them naming b first. Started in the graphs' order, a thread waiting
    # for b's request holds only a's, so none waits on another for ever.
    with Engine(_TwoStageTask(), jobs=1) as engine:

        def ask(t: int) -> dict[str, list[list[np.ndarray]]]:
            a = [solid((t * 10 + i, 0, 0), (SIZE, SIZE)) for i in range(3)]
            b = [solid((t * 10 + i, 1, 0), (SIZE, SIZE)) for i in range(3)]
            return engine.infer_many({"b": b, "a": a} if t % 2 else {"a": a, "b": b})

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(ask, [t for t in range(4) for _ in range(5)]))
    for k, found in enumerate(results):
        t = k // 5
        assert _means(found["a"]) == _means(found["b"]) == [t * 10 + i for i in range(3)]


def test_a_failing_stage_in_infer_many_gives_back_every_request() -> None:
    with Engine(_TwoStageTask(), jobs=1) as engine:
        with pytest.raises(ModelError, match="no stage 'c'"):
            engine.infer_many(
                {"a": [solid((1, 0, 0), (SIZE, SIZE))], "c": [solid((1, 0, 0), (SIZE, SIZE))]}
            )
        wrong = np.zeros((2, 2), np.uint8)  # b fails to start after a has started
        with pytest.raises(RuntimeError):
            engine.infer_many({"a": [solid((1, 0, 0), (SIZE, SIZE))], "b": [wrong]})
        # every request is back in its pool: the next call, on one request a stage, runs
        found = engine.infer_many(
            {"a": [solid((3, 0, 0), (SIZE, SIZE))], "b": [solid((4, 0, 0), (SIZE, SIZE))]}
        )
    assert _means(found["a"]) == [3] and _means(found["b"]) == [4]


def test_the_infer_a_task_gets_sends_infer_all_to_infer_many(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[list[str]] = []
    infer_many = Engine.infer_many

    def counted(engine: Engine, calls: Mapping[str, Sequence[np.ndarray]]) -> Any:
        asked.append(list(calls))
        return infer_many(engine, calls)

    monkeypatch.setattr(Engine, "infer_many", counted)

    class BothStages(_TwoStageTask):
        def predict(
            self, image: np.ndarray, infer: InferFn, source_size: tuple[int, int]
        ) -> Prediction:
            found = infer_all(infer, {"b": [image], "a": [image]})
            return Prediction([], *source_size, tensors={s: found[s][0][0] for s in found})

    with Engine(BothStages()) as engine:
        prediction = engine.predict(solid((5, 0, 0), (SIZE, SIZE)))
    assert asked == [["b", "a"]]
    np.testing.assert_allclose(prediction.tensors["a"], [[5, 0, 0]])
