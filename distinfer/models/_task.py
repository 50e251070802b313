"""What a model task is: graphs to compile, and a function from pixels to a ``Prediction``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import openvino as ov

from ..engine._prediction import Prediction

#: ``infer(stage, inputs)`` runs the compiled graph of ``stage`` once per input array
#: (all inputs go into the async queue together) and returns, for each input, the
#: graph's outputs in output order. The arrays are copies the caller owns.
InferFn = Callable[[str, Sequence[np.ndarray]], list[list[np.ndarray]]]


@runtime_checkable
class Task(Protocol):
    """A model task: one or more OpenVINO graphs and the code around them.

    ``predict`` runs on one of the engine's host threads, never on an OpenVINO
    thread; it may call ``infer`` several times (a detector, then its crops).
    ``image`` is RGB HWC uint8, possibly decoded at a reduced scale (see
    ``decode_scale``); ``source_size`` is the original ``(width, height)`` and
    the returned coordinates must be in those source pixels.

    Two optional class attributes tune the engine: ``batch_sizes`` (stage ->
    inputs per infer request) and ``lazy_stages`` (stages compiled on first use,
    for input shapes a workload may never need; never all of them).
    """

    kind: str

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

    def save(self, folder: Path) -> dict[str, Any]:
        """Write the model files into ``folder``; return the JSON config ``load`` takes."""
        ...


class PredictsMany(ABC):
    """Base of tasks that predict several images with one ``infer`` call.

    ``Engine.submit_batch`` calls ``predict_many``; ``predict`` is one item of it.
    """

    @abstractmethod
    def predict_many(
        self,
        images: Sequence[np.ndarray],
        infer: InferFn,
        source_sizes: Sequence[tuple[int, int]],
    ) -> list[Prediction]:
        """``predict`` for each image, all of a stage's inputs in the queue at once."""

    def predict(
        self, image: np.ndarray, infer: InferFn, source_size: tuple[int, int]
    ) -> Prediction:
        return self.predict_many([image], infer, [source_size])[0]
