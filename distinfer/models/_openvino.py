"""Reading models from disk and putting preprocessing into their graphs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import openvino as ov
from openvino.preprocess import ColorFormat, PrePostProcessor

from .._errors import ModelError

#: What ``openvino.Core.read_model`` reads, by file suffix.
MODEL_SUFFIXES = (".xml", ".onnx", ".tflite", ".pdmodel")


def read_model(path: str | Path) -> ov.Model:
    """Read an OpenVINO IR, ONNX, TFLite or PaddlePaddle model, with a clear error."""
    path = Path(path)
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise ModelError(
            f"{path}: unsupported model format {path.suffix or '(no suffix)'!r}; "
            f"give a file ending in one of {', '.join(MODEL_SUFFIXES)} or a deployment folder"
        )
    if not path.is_file():
        raise ModelError(
            f"{path}: model file not found (accepted formats: {', '.join(MODEL_SUFFIXES)})"
        )
    try:
        return ov.Core().read_model(path)
    except Exception as exc:  # OpenVINO raises RuntimeError subclasses with long traces
        raise ModelError(f"{path}: OpenVINO cannot read this model: {exc}") from exc


def model_info(model: ov.Model) -> dict[str, str]:
    """``rt_info/model_info`` (as Geti and OTX export it) as strings; empty when absent."""
    if not model.has_rt_info(["model_info"]):
        return {}
    info = model.get_rt_info(["model_info"]).astype(dict)
    return {str(k): str(v.astype(str) if hasattr(v, "astype") else v) for k, v in info.items()}


def input_hw(model: ov.Model, layout: str = "NCHW") -> tuple[int, int] | None:
    """The static (height, width) of the model's first input, or None when dynamic."""
    shape = model.inputs[0].get_partial_shape()
    if shape.rank.is_dynamic or len(shape) != 4:
        return None
    h, w = shape[layout.index("H")], shape[layout.index("W")]
    if h.is_dynamic or w.is_dynamic:
        return None
    return h.get_length(), w.get_length()


def with_u8_rgb_input(
    model: ov.Model,
    *,
    size_hw: tuple[int, int],
    layout: str = "NCHW",
    mean: Sequence[float] | None = None,
    scale: Sequence[float] | None = None,
    model_color: str = "BGR",
) -> ov.Model:
    """Make the model take u8 NHWC RGB images of ``size_hw``.

    Colour conversion, mean/scale and layout run inside the graph (fused by the
    plugin); resizing stays outside, where OpenCV on u8 is cheaper. Static
    shapes: dynamic models are reshaped to ``size_hw`` with batch 1.
    """
    model = model.clone()
    name = model.inputs[0].get_any_name()
    h, w = size_hw
    if input_hw(model, layout) != size_hw or model.inputs[0].get_partial_shape().is_dynamic:
        c = 3
        dims = {"N": 1, "C": c, "H": h, "W": w}
        model.reshape({name: ov.PartialShape([dims[d] for d in layout])})
    ppp = PrePostProcessor(model)
    inp = ppp.input(0)
    inp.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")).set_color_format(
        ColorFormat.RGB
    )
    inp.model().set_layout(ov.Layout(layout))
    steps = inp.preprocess()
    steps.convert_element_type(ov.Type.f32)
    if model_color.upper() == "BGR":
        steps.convert_color(ColorFormat.BGR)
    if mean is not None:
        steps.mean(list(mean))
    if scale is not None:
        steps.scale(list(scale))
    return ppp.build()
