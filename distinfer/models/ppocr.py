"""PP-OCR, bundled: text detection, orientation classification, text recognition.

The ONNX models ship inside the ``rapidocr`` wheel (only its model files are
used); the pre- and post-processing here are distinfer's own. Three bundled
tasks share the code:

- ``ppocr``: detection -> orientation (0/180) -> recognition, one annotation per
  text box in reading order and ``Prediction.text`` with the lines;
- ``ppocr-det``: detection only (PP-OCRv6 det small, static 1x3x640x640 input);
- ``ppocr-cls``: the orientation classifier on one text-line crop.

The detector is ``_ppocr_det`` (with the DB geometry of ``_db``), the orientation
classifier and the recogniser ``_ppocr_rec`` (with the CTC decoding of ``_ctc``);
the tasks here put them together and build their predictions as columns.

>>> task = bundled("ppocr-det")                     # doctest: +SKIP
>>> with Engine(task) as engine:                    # doctest: +SKIP
...     [a.box for a in engine.predict(page).annotations]
"""

from __future__ import annotations

import importlib.resources
import logging
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, cast

import cv2
import numpy as np
import openvino as ov

from .._errors import ConfigError, ModelError
from ..engine._prediction import Prediction
from ._bundled import BUNDLED_MODELS
from ._ctc import LineWarps, alphabet_array, model_alphabet
from ._db import DBParams, reading_order
from ._openvino import read_model
from ._ppocr_det import DET_FIRST_USE, DET_SHAPES, DET_SIZE, TextDetector, det_stage, text_boxes
from ._ppocr_rec import (
    CLS_BATCH,
    CLS_HW,
    CLS_LABELS,
    CLS_WINDOWS,
    REC_BATCH,
    REC_HEIGHT,
    REC_WIDTHS,
    TextLines,
    classify,
    classify_windows,
    cls_graph,
    cls_windows,
    rec_graphs,
    recognize,
)
from ._task import NO_BATCHES, NO_LAZY_STAGES, InferFn, Task

__all__ = [  # the stages' constants and helpers live in _ppocr_det and _ppocr_rec
    "CLS_BATCH", "CLS_FILE", "CLS_HW", "CLS_LABELS", "CLS_WINDOWS", "DET_FILE",
    "DET_FIRST_USE", "DET_SHAPES", "DET_SIZE", "MODELS_DIR_ENV", "REC_BATCH", "REC_FILE",
    "REC_HEIGHT", "REC_WIDTHS", "TASKS", "OCRTask", "TextDetectionTask",
    "TextOrientationTask", "bundled", "bundled_models_dir", "cls_windows", "det_stage",
    "model_file",
]  # fmt: skip

logger = logging.getLogger(__name__)

DET_FILE = "PP-OCRv6_det_small.onnx"
REC_FILE = "PP-OCRv6_rec_small.onnx"
CLS_FILE = "ch_ppocr_mobile_v2.0_cls_mobile.onnx"

#: A folder holding the PP-OCR files instead of the rapidocr wheel (air-gapped nodes).
MODELS_DIR_ENV = "DISTINFER_PPOCR_DIR"


def bundled_models_dir() -> Path:
    """The folder of the model files: ``$DISTINFER_PPOCR_DIR``, else inside ``rapidocr``."""
    if os.environ.get(MODELS_DIR_ENV):
        return Path(os.environ[MODELS_DIR_ENV])
    try:
        return Path(str(importlib.resources.files("rapidocr") / "models"))
    except ModuleNotFoundError as exc:
        raise ModelError("the bundled PP-OCR models need the 'rapidocr' package") from exc


def model_file(folder: Path, name: str) -> Path:
    """``name`` (ONNX) in ``folder``, or the OpenVINO IR of the same stem beside it."""
    path = folder / name
    if path.is_file():
        return path
    if path.with_suffix(".xml").is_file():
        return path.with_suffix(".xml")
    raise ModelError(f"{path}: PP-OCR model file not found (nor {path.with_suffix('.xml').name})")


# -- tasks ----------------------------------------------------------------------


class _PPOCRBase:
    """Model folder and file names shared by the three tasks (``save``/``load``)."""

    kind: str
    files: ClassVar[tuple[str, ...]]
    batch_sizes: Mapping[str, int] = NO_BATCHES
    lazy_stages: frozenset[str] = NO_LAZY_STAGES

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else bundled_models_dir()
        self.paths = {name: model_file(self.folder, name) for name in self.files}

    def _config(self) -> dict[str, Any]:
        return {"kind": self.kind}

    @classmethod
    def _db_params(cls, config: Mapping[str, Any]) -> DBParams:
        try:
            return DBParams(**config.get("db", {}))
        except TypeError as exc:
            raise ConfigError(f"bad DB parameters: {exc}", key="db") from exc

    def save(self, folder: Path) -> dict[str, Any]:
        """Copy the model files into ``folder``; return the config ``load`` takes."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for path in self.paths.values():
            for part in (path, path.with_suffix(".bin")) if path.suffix == ".xml" else (path,):
                if part.resolve() != (folder / part.name).resolve():
                    shutil.copyfile(part, folder / part.name)
        return self._config()


class TextDetectionTask(_PPOCRBase):
    """``ppocr-det``: text boxes (label ``"text"``, box, quad polygon, DB score).

    >>> task = TextDetectionTask()
    >>> task.graphs()["det"].inputs[0].get_partial_shape()
    <PartialShape: [1,640,640,3]>
    """

    kind = "ppocr-det"
    files = (DET_FILE,)
    lazy_stages = DET_FIRST_USE

    def __init__(self, folder: str | Path | None = None, params: DBParams | None = None) -> None:
        super().__init__(folder)
        self.det = TextDetector(params or DBParams())

    def _config(self) -> dict[str, Any]:
        return {"kind": self.kind, "db": asdict(self.det.params)}

    def graphs(self) -> Mapping[str, ov.Model]:
        return self.det.graphs(self.paths[DET_FILE])

    def decode_scale(self, width: int, height: int) -> int:
        # The letterbox only needs the long side to cover the model input.
        return _largest_reduction(max(width, height), DET_SIZE)

    def predict(
        self, image: np.ndarray, infer: InferFn, source_size: tuple[int, int]
    ) -> Prediction:
        return self.predict_many([image], infer, [source_size])[0]

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        return self.det.preprocess(image)

    def predict_many(
        self,
        images: Sequence[np.ndarray],
        infer: InferFn,
        source_sizes: Sequence[tuple[int, int]],
        prepared: Sequence[tuple[np.ndarray, float]] | None = None,
    ) -> list[Prediction]:
        """Several pages in one ``infer`` call (``Engine.submit_batch``)."""
        found = self.det.detect_many(images, infer, source_sizes, prepared)
        return [
            text_boxes(quads, scores, size)
            for (quads, scores), size in zip(found, source_sizes, strict=True)
        ]

    @classmethod
    def load(cls, folder: Path, config: Mapping[str, Any]) -> TextDetectionTask:
        return cls(folder, cls._db_params(config))


class TextOrientationTask(_PPOCRBase):
    """``ppocr-cls``: is this text-line crop upright (``"0"``) or upside down (``"180"``)?

    One annotation covering the whole image, with the classifier's probability.

    >>> task = TextOrientationTask()                # doctest: +SKIP
    >>> engine.predict(crop).annotations[0].label   # doctest: +SKIP
    '0'
    """

    kind = "ppocr-cls"
    files = (CLS_FILE,)
    #: Inputs per request of the throughput engine (``Engine.batch``).
    batch_sizes = MappingProxyType({"cls": CLS_BATCH})

    def graphs(self) -> Mapping[str, ov.Model]:
        return {"cls": cls_graph(self.paths[CLS_FILE])}

    def decode_scale(self, width: int, height: int) -> int:
        return _largest_reduction(height, 2 * CLS_HW[0])

    def predict(
        self, image: np.ndarray, infer: InferFn, source_size: tuple[int, int]
    ) -> Prediction:
        return self.predict_many([image], infer, [source_size])[0]

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """The crop resized to the classifier's height, unless it is its input already."""
        h, w = image.shape[:2]
        if (h, w) == CLS_HW:
            return image
        width = max(1, math.ceil(CLS_HW[0] * w / h))
        return cast(np.ndarray, cv2.resize(image, (width, CLS_HW[0]), interpolation=cv2.INTER_AREA))

    def predict_many(
        self,
        images: Sequence[np.ndarray],
        infer: InferFn,
        source_sizes: Sequence[tuple[int, int]],
        prepared: Sequence[np.ndarray] | None = None,
    ) -> list[Prediction]:
        """Several crops in one ``infer`` call (``Engine.submit_batch``)."""
        crops = prepared if prepared is not None else [self.preprocess(im) for im in images]
        labels, scores = classify(crops, infer)
        return [
            Prediction.from_arrays(
                [(0.0, 0.0, w, h)],
                scores[i : i + 1],
                labels[i : i + 1],
                CLS_LABELS,
                width=w,
                height=h,
            )
            for i, (w, h) in enumerate(source_sizes)
        ]

    @classmethod
    def load(cls, folder: Path, config: Mapping[str, Any]) -> TextOrientationTask:
        return cls(folder)


class OCRTask(_PPOCRBase):
    """``ppocr``: detect text lines, turn upside-down ones, read them.

    Each annotation is one detected box: label ``"text"``, ``text`` the recognised
    string, ``score`` the recognition confidence (mean of the kept CTC steps'
    probabilities), ``class_label``/``class_score`` the orientation (``"0"`` or
    ``"180"``), ``box``/``polygon`` in source pixels. Boxes read with a confidence
    under ``min_text_score`` are dropped. ``Prediction.text`` has one line per
    visual line, its boxes joined by spaces.

    >>> task = OCRTask()                            # doctest: +SKIP
    >>> with Engine(task) as engine:                # doctest: +SKIP
    ...     print(engine.predict(page).text)
    """

    kind = "ppocr"
    files = (DET_FILE, CLS_FILE, REC_FILE)
    batch_sizes = MappingProxyType({"cls": CLS_BATCH})

    def __init__(
        self,
        folder: str | Path | None = None,
        *,
        params: DBParams | None = None,
        rec_widths: Sequence[int] = REC_WIDTHS,
        cls_thresh: float = 0.9,
        min_text_score: float = 0.5,
    ) -> None:
        super().__init__(folder)
        if not rec_widths or any(w < REC_HEIGHT or w % 8 for w in rec_widths):
            raise ConfigError(
                f"rec_widths must be multiples of 8 >= {REC_HEIGHT}, got {rec_widths}"
            )
        self.det = TextDetector(params or DBParams())
        self.rec_widths = tuple(sorted(rec_widths))
        # Only the widths a job's lines need are compiled (one graph each, any batch).
        self.lazy_stages = DET_FIRST_USE | {f"rec{w}" for w in self.rec_widths}
        self.batch_sizes = MappingProxyType(
            {"cls": CLS_BATCH, **{f"rec{w}": REC_BATCH for w in self.rec_widths}}
        )
        self.cls_thresh = cls_thresh
        self.min_text_score = min_text_score
        # The dictionary travels inside the ONNX metadata; read it now so that
        # ``predict`` never touches the files.
        self.alphabet = model_alphabet(read_model(self.paths[REC_FILE]), self.paths[REC_FILE])
        self._alphabet = alphabet_array(self.alphabet)

    def _config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "db": asdict(self.det.params),
            "rec_widths": list(self.rec_widths),
            "cls_thresh": self.cls_thresh,
            "min_text_score": self.min_text_score,
        }

    def graphs(self) -> Mapping[str, ov.Model]:
        return {
            **self.det.graphs(self.paths[DET_FILE]),
            "cls": cls_graph(self.paths[CLS_FILE]),
            **rec_graphs(self.paths[REC_FILE], self.rec_widths),
        }

    def decode_scale(self, width: int, height: int) -> int:
        # Recognition needs the resolution: on the 1280x960 demo pages a full decode
        # reads 100.00% of the characters right, a half decode 99.97% (it merges
        # words: the gaps shrink to a pixel or two) for only ~6% less time, since
        # recognition dominates. So only images twice the detector's size are reduced.
        return _largest_reduction(max(width, height), 2 * DET_SIZE)

    def predict(
        self, image: np.ndarray, infer: InferFn, source_size: tuple[int, int]
    ) -> Prediction:
        return self.predict_many([image], infer, [source_size])[0]

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        return self.det.preprocess(image)

    def predict_many(
        self,
        images: Sequence[np.ndarray],
        infer: InferFn,
        source_sizes: Sequence[tuple[int, int]],
        prepared: Sequence[tuple[np.ndarray, float]] | None = None,
    ) -> list[Prediction]:
        """Several pages with each stage's inputs in one ``infer`` call: the detector's
        per shape, every line's orientation, the lines of each recogniser width."""
        found = self.det.detect_many(images, infer, source_sizes, prepared)
        warps = []
        for image, (quads, _), (width, height) in zip(images, found, source_sizes, strict=True):
            to_image = np.array([image.shape[1] / width, image.shape[0] / height], np.float32)
            warps.append(LineWarps(quads * to_image, REC_HEIGHT, image.shape))
        crops = TextLines([w for warp in warps for w in warp.widths], self.rec_widths)
        each = ((im, w, k) for im, w in zip(images, warps, strict=True) for k in range(len(w)))
        for i, (image, warp, k) in enumerate(each):
            warp.crop(image, k, crops.target(i))
        orientation, orientation_scores = classify_windows(
            [crops.cls_windows(i) for i in range(len(crops))], infer
        )
        flip = (orientation == CLS_LABELS.index("180")) & (orientation_scores > self.cls_thresh)
        for i in np.flatnonzero(flip).tolist():
            crops.turn(i)
        texts, scores = recognize(crops, infer, self._alphabet)
        predictions = []
        start = 0
        for (quads, _), size in zip(found, source_sizes, strict=True):
            end = start + len(quads)
            page = slice(start, end)
            keep = np.flatnonzero((scores[page] >= self.min_text_score) & np.array(
                [bool(t) for t in texts[start:end]], bool
            ))  # fmt: skip
            kept_texts = [texts[start + i] for i in keep.tolist()]
            lines = reading_order(quads[keep])
            predictions.append(
                text_boxes(
                    quads[keep],
                    scores[page][keep],
                    size,
                    labels=("text", *CLS_LABELS),
                    texts=kept_texts,
                    class_ids=1 + orientation[page][keep],
                    class_scores=orientation_scores[page][keep],
                    text="\n".join(" ".join(kept_texts[j] for j in line) for line in lines),
                )
            )
            start = end
        return predictions

    @classmethod
    def load(cls, folder: Path, config: Mapping[str, Any]) -> OCRTask:
        return cls(
            folder,
            params=cls._db_params(config),
            rec_widths=config.get("rec_widths", REC_WIDTHS),
            cls_thresh=config.get("cls_thresh", 0.9),
            min_text_score=config.get("min_text_score", 0.5),
        )


def _largest_reduction(side: int, needed: int) -> int:
    """The largest JPEG reduction (1, 2, 4, 8) that keeps ``side`` at least ``needed``."""
    return next((s for s in (8, 4, 2) if side // s >= needed), 1)


TASKS: dict[str, type[TextDetectionTask] | type[TextOrientationTask] | type[OCRTask]] = {
    "ppocr": OCRTask,
    "ppocr-det": TextDetectionTask,
    "ppocr-cls": TextOrientationTask,
}


def bundled(name: str) -> Task:
    """A bundled PP-OCR task by name: ``ppocr``, ``ppocr-det`` or ``ppocr-cls``.

    >>> bundled("ppocr-det").kind
    'ppocr-det'
    """
    if name not in BUNDLED_MODELS:
        raise ConfigError(
            f"unknown bundled model {name!r} (choose from {', '.join(BUNDLED_MODELS)})",
            key="model",
        )
    task_type = TASKS[name]
    folder = bundled_models_dir()
    logger.debug("bundled %s from %s", name, folder)
    return task_type(folder)
