"""What a model task is: graphs to compile, and a function from pixels to a ``Prediction``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import numpy as np
import openvino as ov

from ..engine._prediction import Prediction

#: ``infer(stage, inputs)`` runs the compiled graph of ``stage`` once per input array
#: (all inputs go into the async queue together) and returns, for each input, the
#: graph's outputs in output order. The arrays are copies the caller owns.
InferFn = Callable[[str, Sequence[np.ndarray]], list[list[np.ndarray]]]


#: ``Task.batch_sizes`` of a task whose stages take one input per request.
NO_BATCHES: Mapping[str, int] = MappingProxyType({})
#: ``Task.lazy_stages`` of a task that compiles every stage at start.
NO_LAZY_STAGES: frozenset[str] = frozenset()


@runtime_checkable
class Task(Protocol):
    """A model task: one or more OpenVINO graphs and the code around them.

    ``predict`` runs on one of the engine's host threads, never on an OpenVINO
    thread; it may call ``infer`` several times (a detector, then its crops).
    ``image`` is RGB HWC uint8, possibly decoded at a reduced scale (see
    ``decode_scale``); ``source_size`` is the original ``(width, height)`` and
    the returned coordinates must be in those source pixels.

    What a task can do beyond that is declared here, once, and every task says it:
    ``batch_sizes`` (stage -> inputs per infer request; empty: one),
    ``lazy_stages`` (stages compiled on first use, for input shapes a workload may
    never need; never all of them), ``predict_many``, which predicts several
    images with all of a stage's inputs in the queue at once (a task that cannot,
    predicts them in turn: ``predict_each``), and ``preprocess``, the per-image
    part of its preprocessing. Stages whose inputs do not depend on each other's
    outputs go through ``infer_all`` together.
    """

    kind: str

    @property
    def batch_sizes(self) -> Mapping[str, int]: ...

    @property
    def lazy_stages(self) -> frozenset[str]: ...

    def graphs(self) -> Mapping[str, ov.Model]:
        """The graphs to compile by stage name, preprocessing inside, u8 NHWC RGB input."""
        ...

    def decode_scale(self, width: int, height: int) -> int:
        """How much a JPEG of this size may be reduced at decode time: 1, 2, 4 or 8."""
        ...

    def predict(
        self, image: np.ndarray, infer: InferFn, source_size: tuple[int, int]
    ) -> Prediction:
        """Pixels in, prediction out (coordinates in source pixels)."""
        ...

    def preprocess(self, image: np.ndarray) -> Any:
        """What needs only the image (a resize to the first graph's input): the engine
        runs it as each image is decoded, while its pixels are still in the CPU's
        cache (a page read back later, from memory, costs 1.6x more to resize), and
        hands the results to ``predict_many`` as ``prepared``. None if nothing."""
        ...

    def predict_many(
        self,
        images: Sequence[np.ndarray],
        infer: InferFn,
        source_sizes: Sequence[tuple[int, int]],
        prepared: Sequence[Any] | None = None,
    ) -> list[Prediction]:
        """``predict`` for each image; a batching task sends each stage's inputs together.
        ``prepared`` is ``preprocess`` of each image, or None: then the task runs it."""
        ...

    def save(self, folder: Path) -> dict[str, Any]:
        """Write the model files into ``folder``; return the JSON config ``load`` takes."""
        ...


def infer_all(
    infer: InferFn, calls: Mapping[str, Sequence[np.ndarray]]
) -> dict[str, list[list[np.ndarray]]]:
    """``infer(stage, inputs)`` for each stage of ``calls``, whose inputs do not wait
    on each other's outputs (a recogniser's width buckets, a detector's shapes).

    The ``infer`` an engine passes its task starts every stage's requests before it
    waits on any (it has a ``many``, ``Engine.infer_many``); any other function (a
    test's, a recording) is called once per stage, in turn.
    """
    many = getattr(infer, "many", None)
    if many is not None:
        together: dict[str, list[list[np.ndarray]]] = many(calls)
        return together
    return {stage: infer(stage, inputs) for stage, inputs in calls.items()}


def predict_each(
    task: Task,
    images: Sequence[np.ndarray],
    infer: InferFn,
    source_sizes: Sequence[tuple[int, int]],
) -> list[Prediction]:
    """``predict_many`` of a task that predicts one image at a time."""
    return [
        task.predict(image, infer, size) for image, size in zip(images, source_sizes, strict=True)
    ]
