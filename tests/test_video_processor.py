from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
from _tasks import MeanColourTask, solid

from distinfer import AsyncVideoProcessor, Deployment, InferenceError, Prediction
from distinfer.engine._engine import GATHER


def make_deployment(delay: Any) -> Deployment:
    d = Deployment(MeanColourTask(delay_s=delay))
    d.load_inference_models(max_async_infer_requests=2)
    return d


def test_frames_are_processed_in_submission_order_when_inference_finishes_out_of_order() -> None:
    # Every frame at a multiple of 2 x GATHER waits until the frame GATHER later has
    # finished: inference then finishes out of order for certain, not only when the
    # timing happens to say so. (GATHER later: a host thread runs up to GATHER frames
    # it gathered one after another, so the frame waited for is always on another
    # thread, and never itself waiting.)
    after = [threading.Event() for _ in range(60)]
    finished: list[int] = []

    def wait_for_the_next(image: np.ndarray) -> float:
        i = int(image[0, 0, 0])
        if i % (2 * GATHER) == 0 and i + GATHER < 60:
            assert after[i + GATHER].wait(timeout=10)
        finished.append(i)
        after[i].set()
        return 0.0

    # Four host threads, 16 items in flight: one thread's gathered frames never fill
    # the engine, so the frame waited for always gets in.
    deployment = Deployment(MeanColourTask(delay_s=wait_for_the_next))
    deployment.load_inference_models(max_async_infer_requests=4)
    order: list[int] = []

    def process(frame: np.ndarray, prediction: Prediction, index: int) -> None:
        assert prediction.tensors["mean"][0] == pytest.approx(frame[0, 0, 0])
        order.append(index)

    with AsyncVideoProcessor(deployment, process, max_buffer=4 * GATHER) as processor:
        for i in range(60):
            processor.process(solid((i, 0, 0)), i)
        processor.await_all()
    deployment.close()
    assert order == list(range(60))
    waited = range(0, 60 - GATHER, 2 * GATHER)
    assert all(finished.index(i + GATHER) < finished.index(i) for i in waited)


def test_process_blocks_when_the_buffer_is_full() -> None:
    deployment = make_deployment(None)
    gate = threading.Event()
    processed: list[int] = []

    def process(frame: np.ndarray, prediction: Prediction, index: int) -> None:
        gate.wait()
        processed.append(index)

    submitted: list[int] = []
    processor = AsyncVideoProcessor(deployment, process, max_buffer=4)
    processor.start()

    def feed() -> None:
        for i in range(10):
            processor.process(solid((i, 0, 0)), i)
            submitted.append(i)

    feeder = threading.Thread(target=feed)
    feeder.start()
    deadline = time.monotonic() + 10
    while len(submitted) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    feeder.join(timeout=0.5)
    assert feeder.is_alive() and len(submitted) == 4  # the fifth process() call is blocked
    gate.set()
    feeder.join(timeout=10)
    processor.await_all()
    processor.stop()
    assert processed == list(range(10))
    deployment.close()


def test_processing_errors_surface_and_later_frames_still_run() -> None:
    deployment = make_deployment(None)
    processed: list[int] = []

    def process(frame: np.ndarray, prediction: Prediction, index: int) -> None:
        if index == 2:
            raise RuntimeError("cannot write frame 2")
        processed.append(index)

    processor = AsyncVideoProcessor(deployment, process, max_buffer=2)
    processor.start()
    with pytest.raises(InferenceError, match="runtime_data=2"):
        for i in range(20):
            processor.process(solid((i, 0, 0)), i)
    processor.await_all()  # reported once, by process()
    processor.stop()
    assert 2 not in processed
    assert processed == sorted(processed)
    assert processed[:2] == [0, 1]
    deployment.close()


def test_waiting_does_not_busy_poll() -> None:
    deployment = make_deployment(None)
    processor = AsyncVideoProcessor(deployment, lambda f, p, i: time.sleep(0.4), max_buffer=2)
    processor.start()
    processor.process(solid((1, 1, 1)), 0)
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    processor.await_all()
    cpu, wall = time.process_time() - cpu_before, time.perf_counter() - wall_before
    processor.stop()
    assert wall >= 0.3
    assert cpu < 0.1 * wall  # waiting threads sleep on conditions
    deployment.close()
