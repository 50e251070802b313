"""Fixtures for the model task tests: run a task on distinfer's engine, recording calls."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest

from distinfer import Prediction
from distinfer.engine._engine import Engine
from distinfer.models import Task

#: ``(stage, number of inputs)`` for every ``infer`` call a task made.
Calls = list[tuple[str, int]]
Predict = Callable[..., Prediction]


@pytest.fixture
def predict() -> Predict:
    """``predict(task, image, source_size=None, calls=None)`` on a real engine.

    The task's ``predict`` gets the engine's ``infer``, wrapped to append
    ``(stage, len(inputs))`` to ``calls`` when a list is given.
    """

    def run(
        task: Task,
        image: np.ndarray,
        source_size: tuple[int, int] | None = None,
        calls: Calls | None = None,
    ) -> Prediction:
        with Engine(task, jobs=2) as engine:

            def infer(stage: str, inputs: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
                if calls is not None:
                    calls.append((stage, len(inputs)))
                return engine.infer(stage, inputs)

            size = source_size or (image.shape[1], image.shape[0])
            return task.predict(image, infer, size)

    return run
