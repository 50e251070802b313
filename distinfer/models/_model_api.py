"""Classification, detection and segmentation through openvino-model-api, on our engine.

model_api normally owns the whole inference: its ``OpenvinoAdapter`` reads the
model, embeds the preprocessing into the graph, compiles it and runs its own
async queue. distinfer keeps model_api's graph editing and its post-processing
and replaces the middle:

1. ``_GraphAdapter`` is model_api's own ``OpenvinoAdapter`` that never loads a
   device (``load_model`` does nothing) and embeds every preprocessing step
   except the resize (layout, colour, mean/scale stay in the graph).
2. The wrapper (``SSD``, ``YOLOv8``, ``Classification``, ...) is built on it as
   usual, reading ``rt_info/model_info`` (model_type, labels, thresholds).
3. ``graphs()`` hands that graph, now with a static u8 NHWC input of the model's
   size, to distinfer's engine, which compiles it with the other stages.
4. ``predict`` resizes with OpenCV the way the wrapper's ``resize_type`` says,
   calls ``infer``, then ``wrapper.postprocess(outputs, meta)`` with the meta of
   ``wrapper.base_preprocess`` (which, with preprocessing embedded, only records
   the image shape), and converts the result into a prediction's columns.

Images are RGB, as the Geti SDK passes them to model_api.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
import openvino as ov
from model_api.adapters.openvino_adapter import OpenvinoAdapter
from model_api.adapters.utils import INTERPOLATION_TYPES, crop_resize_ocv
from model_api.models import Model

from .._errors import ConfigError, ModelError
from ..engine._prediction import Prediction
from ._model_api_results import CONVERTERS, Frame
from ._openvino import MODEL_SUFFIXES, model_info, read_model
from ._raw import STAGE, copy_model_files, largest_reduction
from ._task import NO_BATCHES, NO_LAZY_STAGES, InferFn

logger = logging.getLogger(__name__)

#: model_api wrapper names (``rt_info/model_info/model_type``, lower case) by task kind.
MODEL_TYPES: dict[str, tuple[str, ...]] = {
    "classification": ("classification",),
    "detection": ("ssd", "yolo", "yolov4", "yolof", "yolox", "yolov5", "yolov8", "yolo11"),
    "segmentation": ("segmentation",),
    "instance_segmentation": ("maskrcnn", "detrinstseg", "yolo-seg"),
}
#: The wrapper a kind gets when the model does not say (``rt_info`` without model_type).
DEFAULT_MODEL_TYPES = {
    "classification": "Classification",
    "detection": "SSD",
    "segmentation": "Segmentation",
    "instance_segmentation": "MaskRCNN",
}


def kind_of_model_type(model_type: str) -> str | None:
    """The distinfer task kind of a model_api / Geti model type, or None if unsupported.

    >>> kind_of_model_type("YOLOX"), kind_of_model_type("AnomalyDetection")
    ('detection', None)
    """
    wanted = model_type.lower()
    return next((kind for kind, names in MODEL_TYPES.items() if wanted in names), None)


class _GraphAdapter(OpenvinoAdapter):  # type: ignore[misc]  # model_api is untyped
    """model_api's OpenVINO adapter as a graph holder: distinfer's engine compiles and runs.

    model_api calls ``embed_preprocessing`` from the wrapper's constructor and
    then ``load_model``; here the first leaves the resize out (OpenCV does it on
    u8 before the graph: cheaper, and the input shape stays static) and the
    second does nothing.
    """

    resize_embedded_by_us = False

    def load_model(self) -> None:
        """Nothing to load: the engine compiles ``self.model``."""

    def embed_preprocessing(self, *args: Any, **kwargs: Any) -> None:
        if args or "resize_mode" not in kwargs:
            raise ModelError("unsupported openvino-model-api version: embed_preprocessing changed")
        kwargs["resize_mode"] = ""  # model_api skips the resize step when this is empty
        kwargs["input_frame_shape"] = None
        super().embed_preprocessing(**kwargs)
        self.resize_embedded_by_us = True


def _resize(image: np.ndarray, wrapper: Any) -> np.ndarray:
    """Resize to the model input as model_api's ``resize_type`` does, in OpenCV on u8."""
    w, h = int(wrapper.w), int(wrapper.h)
    mode = str(wrapper.params.resize_type)
    interpolation = INTERPOLATION_TYPES[str(wrapper.params.interpolation_mode)]
    pad = int(wrapper.params.pad_value)
    ih, iw = image.shape[:2]
    if mode == "standard":
        return cast(np.ndarray, cv2.resize(image, (w, h), interpolation=interpolation))
    if mode == "crop":
        return cast(np.ndarray, crop_resize_ocv(image, (w, h)))
    # fit_to_window (pad right and bottom) and fit_to_window_letterbox (pad around):
    # the same sizes as model_api's in-graph resize (round half to even).
    scale = min(w / iw, h / ih)
    nw, nh = min(w, round(iw * scale)), min(h, round(ih * scale))
    resized = cv2.resize(image, (nw, nh), interpolation=interpolation)
    dx, dy = ((w - nw) // 2, (h - nh) // 2) if mode == "fit_to_window_letterbox" else (0, 0)
    padded = cv2.copyMakeBorder(
        resized, dy, h - nh - dy, dx, w - nw - dx, cv2.BORDER_CONSTANT, value=(pad, pad, pad)
    )
    return cast(np.ndarray, padded)


def _yolox_resize(image: np.ndarray, w: int, h: int) -> tuple[np.ndarray, float]:
    """Megvii YOLOX's input: scaled to fit ``w`` x ``h`` keeping the aspect (OpenCV's
    rounding of ``fx``/``fy``), padded right and bottom with 114; and the scale."""
    scale = min(w / image.shape[1], h / image.shape[0])
    resized = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    padded = np.full((h, w, 3), 114, dtype=np.uint8)
    padded[: resized.shape[0], : resized.shape[1]] = resized[:h, :w]
    return padded, scale


def read_model_info(path: Path) -> dict[str, str]:
    """``rt_info/model_info`` of a model file as strings (empty when it has none)."""
    return model_info(read_model(path))


def _resolve_type(path: Path, kind: str | None, declared: str | None) -> tuple[str, str]:
    """``(model_type, kind)`` from the task asked for and the model type declared."""
    if kind is not None and kind not in MODEL_TYPES:
        raise ConfigError(f"unknown task {kind!r} (choose from {', '.join(MODEL_TYPES)})", "task")
    if declared is None:
        if kind is None:
            raise ModelError(f"{path}: rt_info has no model_info/model_type; give the task")
        return DEFAULT_MODEL_TYPES[kind], kind
    declared_kind = kind_of_model_type(declared)
    if declared_kind is None:
        supported = ", ".join(n for names in MODEL_TYPES.values() for n in names)
        raise ModelError(f"{path}: model type {declared!r} is not supported ({supported})")
    if kind is not None and kind != declared_kind:
        raise ModelError(f"{path}: the model is a {declared!r} ({declared_kind}) model, not {kind}")
    return declared, declared_kind


class ModelApiTask:
    """A classification, detection, segmentation or instance segmentation model,
    pre- and post-processed by openvino-model-api, run by distinfer's engine.

    ``kind`` and ``model_type`` (the model_api wrapper: ``"SSD"``, ``"YOLOv8"``,
    ...) default to what ``rt_info/model_info/model_type`` says; ``labels`` and
    ``options`` (any model_api parameter: ``confidence_threshold``, ``topk``,
    ``resize_type``, ...) override ``rt_info/model_info``. Coordinates come back
    in source pixels; a classification gives one annotation per top label,
    covering the whole image. Reads OpenVINO IR (``.xml``).

    >>> task = ModelApiTask("detector.xml", labels=["cat", "dog"])  # doctest: +SKIP
    >>> task.kind, task.model_type                                   # doctest: +SKIP
    ('detection', 'SSD')
    """

    batch_sizes = NO_BATCHES
    lazy_stages = NO_LAZY_STAGES

    def __init__(
        self,
        model: str | Path,
        *,
        kind: str | None = None,
        model_type: str | None = None,
        labels: Sequence[str] | None = None,
        **options: Any,
    ) -> None:
        self.path = Path(model)
        if self.path.suffix.lower() in MODEL_SUFFIXES and self.path.suffix.lower() != ".xml":
            raise ModelError(
                f"{self.path}: model_api tasks read OpenVINO IR (.xml); convert this "
                "model with `ovc`, or use task='raw'"
            )
        graph = read_model(self.path)  # clear errors for a missing file or a bad suffix
        self.labels = list(labels) if labels is not None else None
        self.options = dict(options)
        declared = model_type or model_info(graph).get("model_type")
        self.model_type, self.kind = _resolve_type(self.path, kind, declared)
        self._wrapper = self._create_wrapper()
        self._graph, self._resize_here = self._static_graph()
        self._output_names = list(self._wrapper.outputs)
        self._convert = CONVERTERS[self.kind]

    def _create_wrapper(self) -> Any:
        try:
            adapter = _GraphAdapter(ov.Core(), str(self.path), device="CPU")
            wrapper_class = Model.get_model_class(self.model_type)
        except Exception as exc:  # model_api raises RuntimeError / WrapperError
            raise ModelError(f"{self.path}: model_api cannot read this model: {exc}") from exc
        known = wrapper_class.parameters()
        unknown = sorted(set(self.options) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown option(s) {', '.join(unknown)} for a {self.model_type} model "
                f"(options: {', '.join(sorted(known))})",
                key=unknown[0],
            )
        configuration = dict(self.options)
        if self.labels is not None:
            configuration["labels"] = list(self.labels)
        if self.kind == "segmentation":
            configuration.setdefault("return_soft_prediction", True)  # needed for contours
        try:
            return wrapper_class(adapter, configuration, preload=False)
        except Exception as exc:
            raise ModelError(f"{self.path}: model_api rejects this model: {exc}") from exc

    def _static_graph(self) -> tuple[ov.Model, bool]:
        """The graph to compile, and whether ``predict`` resizes to its static input."""
        wrapper, adapter = self._wrapper, self._wrapper.inference_adapter
        graph = cast(ov.Model, adapter.model)
        if len(graph.inputs) != 1:
            raise ModelError(
                f"{self.path}: distinfer runs single-input models; this one has "
                f"{len(graph.inputs)} inputs ({', '.join(wrapper.inputs)})"
            )
        if not wrapper.params.embedded_processing:
            return graph, False  # dynamic model: model_api preprocesses in Python
        if not adapter.resize_embedded_by_us:
            # Saved by model_api with its resize inside: fix the input to the model size,
            # where that resize is the identity.
            hw = [int(wrapper.h), int(wrapper.w)]
            try:
                graph.reshape({graph.inputs[0].get_any_name(): [1, *hw, 3]})
            except Exception as exc:  # OpenVINO raises RuntimeError subclasses
                raise ModelError(f"{self.path}: cannot fix the input to {hw}: {exc}") from exc
        return graph, True

    def graphs(self) -> Mapping[str, ov.Model]:
        return {STAGE: self._graph}

    def decode_scale(self, width: int, height: int) -> int:
        if not self._resize_here:
            return 1
        return largest_reduction(width, height, (int(self._wrapper.w), int(self._wrapper.h)))

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """The model input and the wrapper's meta for its ``postprocess``."""
        wrapper = self._wrapper
        inputs, meta = wrapper.base_preprocess(image)
        if not self._resize_here:
            return inputs[wrapper.image_blob_name][0], meta
        if self.model_type.lower() == "yolox":
            # YOLOX's wrapper resizes in Python its own way and its postprocess
            # divides by meta["scale"]: do that resize here, as it does.
            pixels, meta["scale"] = _yolox_resize(image, int(wrapper.w), int(wrapper.h))
            meta["resized_shape"] = pixels.shape
            return pixels, meta
        return _resize(image, wrapper), meta

    def predict(
        self, image: np.ndarray, infer: InferFn, source_size: tuple[int, int]
    ) -> Prediction:
        return self.predict_many([image], infer, [source_size])[0]

    def predict_many(
        self,
        images: Sequence[np.ndarray],
        infer: InferFn,
        source_sizes: Sequence[tuple[int, int]],
        prepared: Sequence[tuple[np.ndarray, dict[str, Any]]] | None = None,
    ) -> list[Prediction]:
        """Several images through the queue together (one ``infer`` call): a chain's crops."""
        if prepared is None:
            prepared = [self.preprocess(im) for im in images]
        outputs = infer(STAGE, [pixels for pixels, _ in prepared])
        predictions = []
        for image, (_, meta), outs, size in zip(
            images, prepared, outputs, source_sizes, strict=True
        ):
            result = self._wrapper.postprocess(
                dict(zip(self._output_names, outs, strict=True)), meta
            )
            found = self._convert(result, self._wrapper, Frame(image, size))
            predictions.append(found.prediction(size))
        return predictions

    def save(self, folder: Path) -> dict[str, Any]:
        """Copy the original model (without embedded preprocessing) into ``folder``."""
        return {
            "kind": self.kind,
            "model": copy_model_files(self.path, Path(folder)),
            "model_type": self.model_type,
            "labels": self.labels,
            "options": self.options,
        }

    @classmethod
    def load(cls, folder: Path, config: Mapping[str, Any]) -> ModelApiTask:
        return cls(
            Path(folder) / config["model"],
            kind=config["kind"],
            model_type=config.get("model_type"),
            labels=config.get("labels"),
            **dict(config.get("options") or {}),
        )
