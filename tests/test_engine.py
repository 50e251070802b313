from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
from _tasks import BatchedMeanColourTask, MeanColourTask, solid

from distinfer import InputError, Prediction
from distinfer._engine import Engine, available_cores


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
        assert engine.max_in_flight == 2 * optimal
    with Engine(MeanColourTask()) as engine:  # a core each, two per stream at least
        assert engine.jobs == max(available_cores(), 2 * optimal)
        assert engine.max_in_flight == 2 * engine.jobs
    one_thread = {"INFERENCE_NUM_THREADS": 1}  # an actor's share of a node's cores
    with Engine(MeanColourTask(), jobs=0, config=one_thread) as engine:
        optimal = engine.jobs
    with Engine(MeanColourTask(), config=one_thread) as engine:
        assert optimal is not None and engine.jobs == 2 * optimal


def test_submit_overlaps_items_and_bounds_what_is_in_flight() -> None:
    task = MeanColourTask(delay_s=lambda img: 0.02)
    outcomes: list[Prediction | BaseException] = []
    lock = threading.Lock()

    def done(outcome: Prediction | BaseException, pixels: object) -> None:
        with lock:
            outcomes.append(outcome)

    with Engine(task, jobs=2, max_in_flight=3) as engine:
        for i in range(30):
            engine.submit(solid((i, 0, 0)), done)
    assert len(outcomes) == 30
    assert all(isinstance(o, Prediction) for o in outcomes)
    assert task.max_running == 3  # overlapped, and never more than max_in_flight
    assert all(name.startswith("distinfer-host") for name in task.threads)


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
