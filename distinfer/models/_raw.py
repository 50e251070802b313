"""The ``raw`` task: any model OpenVINO reads, outputs returned as named tensors.

Also the small helpers every file-backed task shares: copying a model's files
into a deployment folder, and choosing a JPEG decode reduction.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
import openvino as ov

from .._errors import ConfigError, ModelError
from ..engine._prediction import Prediction
from ._openvino import input_hw, model_info, read_model, with_u8_rgb_input
from ._task import NO_BATCHES, NO_LAZY_STAGES, InferFn

logger = logging.getLogger(__name__)

#: The stage name of single-model tasks.
STAGE = "model"

#: Files that travel with a model file, by suffix (weights stored beside the graph).
_COMPANIONS = {".xml": (".bin",), ".pdmodel": (".pdiparams",)}


def copy_model_files(path: Path, folder: Path) -> str:
    """Copy a model file and its weights file (``.bin``, ``.pdiparams``) into ``folder``.

    Returns the model's file name inside ``folder``.

    >>> import tempfile
    >>> src = Path(tempfile.mkdtemp()) / "m.onnx"
    >>> _ = src.write_bytes(b"onnx")
    >>> copy_model_files(src, Path(tempfile.mkdtemp()))
    'm.onnx'
    """
    folder.mkdir(parents=True, exist_ok=True)
    files = [path] + [path.with_suffix(s) for s in _COMPANIONS.get(path.suffix.lower(), ())]
    for src in files:
        if not src.is_file():
            if src == path:
                raise ModelError(f"{path}: model file not found")
            continue  # e.g. an IR whose weights are all in the .xml
        dst = folder / src.name
        if src.resolve() != dst.resolve():
            shutil.copyfile(src, dst)
    return path.name


def largest_reduction(width: int, height: int, needed_wh: tuple[int, int] | None) -> int:
    """The largest JPEG decode reduction (8, 4, 2, 1) that keeps the image at least
    ``needed_wh`` (the model input), so the decode is cheap and the resize still shrinks.

    >>> largest_reduction(4000, 3000, (640, 640))
    4
    >>> largest_reduction(4000, 3000, None)
    1
    """
    if needed_wh is None:
        return 1
    w, h = needed_wh
    return next((s for s in (8, 4, 2) if width // s >= w and height // s >= h), 1)


def _floats(value: Any) -> list[float] | None:
    """``[1, 2]``, ``"1 2"`` or ``"1,2"`` as floats; None for None or empty."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    values = [float(v) for v in value]
    return values or None


def _guess_layout(model: ov.Model) -> str:
    """The first input's layout: as set in the model, else NCHW unless channels come last."""
    shape = model.inputs[0].get_partial_shape()
    explicit = ov.layout_helpers.get_layout(model.inputs[0])
    if not explicit.empty:
        layout = str(explicit.to_string()).strip("[]").replace(",", "").upper()
        if len(layout) == 4:
            return layout
    if shape.rank.is_static and len(shape) == 4:
        last = shape[3]
        if (
            last.is_static
            and last.get_length() in (1, 3)
            and not (shape[1].is_static and shape[1].get_length() in (1, 3))
        ):
            return "NHWC"
    return "NCHW"


class RawTask:
    """Run any model and return its outputs by name: ``Prediction.tensors``.

    The image is resized with OpenCV to the model's input size (``size`` as
    ``(width, height)`` when the model's is dynamic); layout, colour order
    (``color``: the order the model wants, ``"RGB"`` or ``"BGR"``), ``mean`` and
    ``scale`` run inside the graph. Each parameter left out comes from the
    model's ``rt_info/model_info`` (``mean_values``, ``scale_values``,
    ``reverse_input_channels``) when present; with none at all the model gets
    u8 RGB values as floats. Tensors keep the model's batch dimension of 1.

    >>> task = RawTask("model.onnx", mean=[127.5] * 3, scale=[127.5] * 3)  # doctest: +SKIP
    >>> engine.predict(image).tensors["logits"].shape                      # doctest: +SKIP
    (1, 1000)
    """

    kind = "raw"
    batch_sizes = NO_BATCHES
    lazy_stages = NO_LAZY_STAGES

    def __init__(
        self,
        model: str | Path,
        *,
        size: Sequence[int] | None = None,
        mean: Sequence[float] | str | None = None,
        scale: Sequence[float] | str | None = None,
        layout: str | None = None,
        color: str | None = None,
    ) -> None:
        self.path = Path(model)
        graph = read_model(self.path)
        if len(graph.inputs) != 1:
            raise ModelError(
                f"{self.path}: the raw task runs single-input image models, "
                f"this one has {len(graph.inputs)} inputs"
            )
        self.layout = (layout or _guess_layout(graph)).upper()
        if sorted(self.layout) != sorted("NCHW"):
            raise ConfigError(f"layout must be NCHW or NHWC, got {layout!r}", key="layout")
        # model_api's convention: the caller's image is RGB (as the Geti SDK passes it),
        # reverse_input_channels means the model wants the other order.
        info = model_info(graph)
        reverse = info.get("reverse_input_channels", "").lower()
        self.color = (color or ("BGR" if reverse in ("true", "yes", "1") else "RGB")).upper()
        if self.color not in ("RGB", "BGR"):
            raise ConfigError(f"color must be 'RGB' or 'BGR', got {color!r}", key="color")
        self.mean = _floats(mean) or _floats(info.get("mean_values"))
        self.scale = _floats(scale) or _floats(info.get("scale_values"))
        hw = input_hw(graph, self.layout)
        if size is not None:
            if len(size) != 2 or min(size) < 1:
                raise ConfigError(f"size must be (width, height), got {size!r}", key="size")
            hw = (int(size[1]), int(size[0]))
        if hw is None:
            raise ModelError(
                f"{self.path}: the model's input size is dynamic; give size=(width, height)"
            )
        self.size_wh = (hw[1], hw[0])
        self._graph = with_u8_rgb_input(
            graph,
            size_hw=hw,
            layout=self.layout,
            mean=self.mean,
            scale=self.scale,
            model_color=self.color,
        )
        self.output_names = [
            out.get_any_name() if out.get_names() else f"output{i}"
            for i, out in enumerate(self._graph.outputs)
        ]

    def graphs(self) -> Mapping[str, ov.Model]:
        return {STAGE: self._graph}

    def decode_scale(self, width: int, height: int) -> int:
        return largest_reduction(width, height, self.size_wh)

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """The image resized to the model's input."""
        if (image.shape[1], image.shape[0]) == self.size_wh:
            return image
        return cast(np.ndarray, cv2.resize(image, self.size_wh, interpolation=cv2.INTER_LINEAR))

    def predict(
        self, image: np.ndarray, infer: InferFn, source_size: tuple[int, int]
    ) -> Prediction:
        return self.predict_many([image], infer, [source_size])[0]

    def predict_many(
        self,
        images: Sequence[np.ndarray],
        infer: InferFn,
        source_sizes: Sequence[tuple[int, int]],
        prepared: Sequence[np.ndarray] | None = None,
    ) -> list[Prediction]:
        """Several images through the queue together (one ``infer`` call)."""
        inputs = prepared if prepared is not None else [self.preprocess(im) for im in images]
        outputs = infer(STAGE, inputs)
        return [
            Prediction(
                width=size[0],
                height=size[1],
                tensors=dict(zip(self.output_names, outs, strict=True)),
            )
            for outs, size in zip(outputs, source_sizes, strict=True)
        ]

    def save(self, folder: Path) -> dict[str, Any]:
        """Copy the model into ``folder``; the config records every preprocessing choice."""
        return {
            "kind": self.kind,
            "model": copy_model_files(self.path, Path(folder)),
            "size": list(self.size_wh),
            "mean": self.mean,
            "scale": self.scale,
            "layout": self.layout,
            "color": self.color,
        }

    @classmethod
    def load(cls, folder: Path, config: Mapping[str, Any]) -> RawTask:
        return cls(
            Path(folder) / config["model"],
            size=config.get("size"),
            mean=config.get("mean"),
            scale=config.get("scale"),
            layout=config.get("layout"),
            color=config.get("color"),
        )
