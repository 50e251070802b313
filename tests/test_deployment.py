from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from _tasks import MeanColourTask, solid

from distinfer import Deployment, InferenceError, InputError, Prediction
from distinfer.engine import _engine


@pytest.fixture
def deployment() -> Any:
    d = Deployment(MeanColourTask(delay_s=lambda img: 0.002 * (img[0, 0, 0] % 5)))
    d.load_inference_models(max_async_infer_requests=2)
    yield d
    d.close()


def test_infer_is_synchronous_and_thread_safe(deployment: Deployment) -> None:
    images = [solid((i, 255 - i, 0)) for i in range(40)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(deployment.infer, images))
    for i, p in enumerate(results):
        np.testing.assert_allclose(p.tensors["mean"], [i, 255 - i, 0])


def test_async_callback_sees_every_item_on_our_thread(deployment: Deployment) -> None:
    seen: dict[int, tuple[np.ndarray, Prediction, str]] = {}

    def callback(image: np.ndarray, prediction: Prediction, runtime_data: int) -> None:
        seen[runtime_data] = (image, prediction, threading.current_thread().name)

    deployment.set_asynchronous_callback(callback)
    assert deployment.asynchronous_mode
    for i in range(25):
        deployment.infer_async(solid((i, 0, 0)), runtime_data=i)
    deployment.await_all()
    assert sorted(seen) == list(range(25))
    for i, (image, prediction, thread) in seen.items():
        assert image[0, 0, 0] == i
        assert prediction.tensors["mean"][0] == pytest.approx(i)
        assert thread == "distinfer-callbacks"


def test_callback_exception_is_raised_from_await_all_and_queue_stays_usable(
    deployment: Deployment,
) -> None:
    done: list[int] = []

    def callback(image: np.ndarray, prediction: Prediction, runtime_data: int) -> None:
        if runtime_data == 3:
            raise KeyError("boom in user code")
        done.append(runtime_data)

    deployment.set_asynchronous_callback(callback)
    for i in range(8):
        deployment.infer_async(solid((i, 0, 0)), i)
    with pytest.raises(InferenceError, match="runtime_data=3") as info:
        deployment.await_all()
    assert [data for data, _ in info.value.failures] == [3]
    assert isinstance(info.value.failures[0][1], KeyError)
    assert sorted(done) == [0, 1, 2, 4, 5, 6, 7]
    # the queue still works, and the failure was reported once
    for i in range(8, 12):
        deployment.infer_async(solid((i, 0, 0)), i)
    deployment.await_all()
    assert sorted(done)[-4:] == [8, 9, 10, 11]


def test_bad_image_in_async_mode_costs_only_itself(deployment: Deployment) -> None:
    ok: list[str] = []
    deployment.set_asynchronous_callback(lambda img, pred, data: ok.append(data))
    deployment.infer_async(solid((1, 2, 3)), "good-1")
    deployment.infer_async(np.zeros((4, 4, 3), np.float64), "bad")
    deployment.infer_async(b"not an image at all", "junk")
    deployment.infer_async(solid((1, 2, 3)), "good-2")
    with pytest.raises(InferenceError) as info:
        deployment.await_all()
    failed = dict(info.value.failures)
    assert set(failed) == {"bad", "junk"}
    assert all(isinstance(exc, InputError) for exc in failed.values())
    assert sorted(ok) == ["good-1", "good-2"]


def test_switching_back_to_synchronous_mode(deployment: Deployment) -> None:
    deployment.set_asynchronous_callback(lambda img, pred, data: None)
    deployment.infer_async(solid((9, 9, 9)), 0)
    deployment.asynchronous_mode = False
    assert not deployment.asynchronous_mode
    with pytest.raises(RuntimeError, match="set_asynchronous_callback"):
        deployment.infer_async(solid((9, 9, 9)), 1)
    assert deployment.infer(solid((0, 0, 250))).annotations[0].label == "blue"


def test_await_any_blocks_while_the_queue_is_full_and_returns_once_an_item_completes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A host thread takes at most 4 of the 8 items in flight, so some finish before
    # the rest are released (by default one thread may take all 8, and they finish
    # together).
    monkeypatch.setattr(_engine, "GATHER", 4)
    gates = [threading.Event() for _ in range(8)]  # item i is held until gates[i] is set

    def held(image: np.ndarray) -> float:
        assert gates[image[0, 0, 0]].wait(timeout=30)
        return 0.0

    completed: list[int] = []
    returned = threading.Event()
    seen_on_return: list[int] = []

    def await_any() -> None:
        deployment.await_any()
        seen_on_return.extend(completed)
        returned.set()

    deployment = Deployment(MeanColourTask(delay_s=held))
    try:
        deployment.load_inference_models(max_async_infer_requests=2)
        full = deployment.engine.max_in_flight
        assert full <= len(gates)
        deployment.set_asynchronous_callback(lambda img, pred, data: completed.append(data))
        for i in range(full):
            deployment.infer_async(solid((i, 0, 0)), i)
        waiter = threading.Thread(target=await_any, daemon=True)
        waiter.start()
        assert not returned.wait(timeout=0.5)  # every slot taken: it waits
        # Items released one by one, in order: a host thread runs the items it
        # gathered together, so the first of them to finish whole may be a few.
        released = 0
        while released < full and not returned.wait(timeout=0 if released == 0 else 2):
            gates[released].set()
            released += 1
        assert returned.is_set() and released < full  # not waiting for every item
        assert seen_on_return and set(seen_on_return) <= set(range(released))
    finally:
        for gate in gates:
            gate.set()
        deployment.close()
    assert sorted(completed) == list(range(full))


def test_close_with_items_in_flight_runs_their_callbacks_and_loads_nothing_again() -> None:
    task = MeanColourTask(delay_s=lambda img: 0.01)
    deployment = Deployment(task)
    deployment.load_inference_models(max_async_infer_requests=2)
    seen: list[int] = []
    deployment.set_asynchronous_callback(lambda image, prediction, i: seen.append(i))
    for i in range(6):
        deployment.infer_async(solid((i, 0, 0)), runtime_data=i)
    closing = threading.Thread(target=deployment.close)  # no await_all: close finishes them
    closing.start()
    closing.join(60)
    assert not closing.is_alive(), "close() hung"
    assert sorted(seen) == list(range(6))
    assert deployment._engine is None  # the callbacks after the engine closed loaded none


def test_infer_rejects_bad_input_with_a_value_error(deployment: Deployment) -> None:
    with pytest.raises(ValueError, match="uint8"):
        deployment.infer(np.zeros((4, 4, 3), np.int16))


def test_synchronous_infer_uses_a_latency_compile_and_async_a_throughput_one(
    deployment: Deployment,
) -> None:
    deployment.infer(solid((1, 2, 3)))
    assert deployment.sync_engine.config["PERFORMANCE_HINT"] == "LATENCY"
    assert deployment.engine.config["PERFORMANCE_HINT"] == "THROUGHPUT"
