"""PP-OCR, bundled: text detection, orientation classification, text recognition.

The ONNX models ship inside the ``rapidocr`` wheel (only its model files are
used); the pre- and post-processing here are distinfer's own. Three bundled
tasks share the code:

- ``ppocr``: detection -> orientation (0/180) -> recognition, one annotation per
  text box in reading order and ``Prediction.text`` with the lines;
- ``ppocr-det``: detection only (PP-OCRv6 det small, static 1x3x640x640 input);
- ``ppocr-cls``: the orientation classifier on one text-line crop.

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
from typing import Any, ClassVar

import cv2
import numpy as np
import openvino as ov

from .._errors import ConfigError, ModelError
from ..engine._prediction import Annotation, Prediction
from ._bundled import BUNDLED_MODELS
from ._ctc import crop_line, ctc_decode_best, fit_width, model_alphabet, with_best_class
from ._db import DBParams, db_boxes, letterbox, reading_order
from ._openvino import read_model, with_u8_rgb_input
from ._task import NO_BATCHES, NO_LAZY_STAGES, InferFn, Task, predict_each

logger = logging.getLogger(__name__)

DET_FILE = "PP-OCRv6_det_small.onnx"
REC_FILE = "PP-OCRv6_rec_small.onnx"
CLS_FILE = "ch_ppocr_mobile_v2.0_cls_mobile.onnx"

#: PaddleOCR normalises every stage to [-1, 1]: (x / 255 - 0.5) / 0.5.
_MEAN = (127.5, 127.5, 127.5)
_SCALE = (127.5, 127.5, 127.5)

DET_SIZE = 640
#: The detector's input shapes (height, width), each compiled as its own graph, in
#: the order they are tried: a page goes to the first one that holds it scaled to a
#: long side of ``DET_SIZE``. A 4:3 or A4 page runs at 480x640 instead of padding a
#: quarter of a square: the bare model runs 39 against 28-29 images/s on 2 cores
#: (benchmark_app, THROUGHPUT). The boxes move by a few pixels (the network sees no
#: padding, as with PaddleOCR's own resize, which keeps the aspect too); the text
#: reads as well (generated pages: 1.0 against 0.9998 of the characters).
DET_SHAPES = {"det-wide": (480, DET_SIZE), "det-tall": (DET_SIZE, 480), "det": (DET_SIZE, DET_SIZE)}
#: Detector shapes compiled on their first page (``Engine``, ``lazy_stages``): the
#: first shape compiles at start, the others cost 0.3 s of CPU each only when a
#: job has pages of that shape.
DET_FIRST_USE = frozenset(list(DET_SHAPES)[1:])
CLS_HW = (48, 192)
REC_HEIGHT = 48
#: Static recognition widths, each compiled as its own graph ``rec<width>``; the
#: cost of a recognition grows linearly with the width, so a line pays for the
#: narrowest bucket it fits (lines wider than the last are squeezed into it).
REC_WIDTHS = (320, 640, 960, 1280, 1920)
CLS_LABELS = ("0", "180")
#: Classifier windows averaged per text line (see ``cls_windows``).
CLS_WINDOWS = 3
#: Crops per request of the orientation classifier (small: per-request cost matters).
CLS_BATCH = 8


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


def _box(quad: np.ndarray) -> tuple[float, float, float, float]:
    (x1, y1), (x2, y2) = quad.min(axis=0).tolist(), quad.max(axis=0).tolist()
    return x1, y1, x2, y2


# -- stages ---------------------------------------------------------------------


def det_stage(width: int, height: int) -> str:
    """The detector graph (``DET_SHAPES``) for an image of ``width`` x ``height``.

    >>> det_stage(1280, 960), det_stage(2480, 3508), det_stage(1000, 1000)
    ('det-wide', 'det-tall', 'det')
    """
    ratio = DET_SIZE / max(width, height)
    fit_h, fit_w = round(height * ratio), round(width * ratio)
    return next(name for name, (h, w) in DET_SHAPES.items() if fit_h <= h and fit_w <= w)


class _Detection:
    """PP-OCR DB detector on static inputs: letterbox in, quads in source pixels out."""

    def __init__(self, params: DBParams) -> None:
        self.params = params

    def graphs(self, path: Path) -> dict[str, ov.Model]:
        model = read_model(path)
        return {
            name: with_u8_rgb_input(model, size_hw=shape, mean=_MEAN, scale=_SCALE)
            for name, shape in DET_SHAPES.items()
        }

    def detect(
        self, image: np.ndarray, infer: InferFn, source_size: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Quads ``(N, 4, 2)`` in source pixels (reading order) and their box scores."""
        return self.detect_many([image], infer, [source_size])[0]

    def detect_many(
        self, images: Sequence[np.ndarray], infer: InferFn, source_sizes: Sequence[tuple[int, int]]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """``detect`` for several images, one ``infer`` call per detector shape among them."""
        stages = [det_stage(image.shape[1], image.shape[0]) for image in images]
        boxed = [letterbox(im, DET_SHAPES[s]) for im, s in zip(images, stages, strict=True)]
        outputs: list[list[np.ndarray]] = [[] for _ in images]
        for stage in dict.fromkeys(stages):
            picked = [i for i, s in enumerate(stages) if s == stage]
            for i, out in zip(picked, infer(stage, [boxed[i][0] for i in picked]), strict=True):
                outputs[i] = out
        found = []
        for image, (_, to_image), (prob, *_), (width, height) in zip(
            images, boxed, outputs, source_sizes, strict=True
        ):
            quads, scores = db_boxes(prob.reshape(prob.shape[-2:]), self.params)
            scale = np.array([width / image.shape[1], height / image.shape[0]], np.float32)
            quads *= scale * to_image
            np.clip(quads[..., 0], 0, width, out=quads[..., 0])
            np.clip(quads[..., 1], 0, height, out=quads[..., 1])
            order = [i for line in reading_order(quads) for i in line]
            found.append((quads[order], scores[order]))
        return found


def cls_windows(crop: np.ndarray, max_windows: int = CLS_WINDOWS) -> list[np.ndarray]:
    """48x192 classifier inputs for one crop 48 pixels tall.

    PaddleOCR squeezes a whole line into 192 pixels; on long lines that squeeze
    flips the answer for a few percent of lines (measured on the demo pages). Up
    to ``max_windows`` unsqueezed windows, evenly spread over the line, are
    classified instead and their probabilities averaged.
    """
    w = crop.shape[1]
    win = CLS_HW[1]
    if w <= win:
        return [fit_width(crop, win)]
    count = min(max_windows, math.ceil(w / win))
    starts = np.linspace(0, w - win, count).round().astype(int).tolist()
    return [np.ascontiguousarray(crop[:, x : x + win]) for x in starts]


def _classify(crops: Sequence[np.ndarray], infer: InferFn) -> list[tuple[str, float]]:
    """Orientation label and probability for each crop (48 pixels tall), in one batch."""
    windows = [cls_windows(c) for c in crops]
    outputs = infer("cls", [x for group in windows for x in group])
    results = []
    start = 0
    for group in windows:
        probs = np.mean([o[0].reshape(-1) for o in outputs[start : start + len(group)]], axis=0)
        start += len(group)
        k = int(probs.argmax())
        results.append((CLS_LABELS[k], min(float(probs[k]), 1.0)))
    return results


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
        self.det = _Detection(params or DBParams())

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

    def predict_many(
        self, images: Sequence[np.ndarray], infer: InferFn, source_sizes: Sequence[tuple[int, int]]
    ) -> list[Prediction]:
        """Several pages in one ``infer`` call (``Engine.submit_batch``)."""
        predictions = []
        for (quads, scores), (width, height) in zip(
            self.det.detect_many(images, infer, source_sizes), source_sizes, strict=True
        ):
            annotations = [
                Annotation("text", float(s), _box(q), polygon=tuple(q.ravel().tolist()))
                for q, s in zip(quads, scores, strict=True)
            ]
            predictions.append(Prediction(annotations, width=width, height=height))
        return predictions

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
        return {"cls": _cls_graph(self.paths[CLS_FILE])}

    def decode_scale(self, width: int, height: int) -> int:
        return _largest_reduction(height, 2 * CLS_HW[0])

    def predict(
        self, image: np.ndarray, infer: InferFn, source_size: tuple[int, int]
    ) -> Prediction:
        return self.predict_many([image], infer, [source_size])[0]

    def predict_many(
        self, images: Sequence[np.ndarray], infer: InferFn, source_sizes: Sequence[tuple[int, int]]
    ) -> list[Prediction]:
        """Several crops in one ``infer`` call (``Engine.submit_batch``)."""
        crops = []
        for image in images:
            h, w = image.shape[:2]
            if (h, w) != CLS_HW:
                width = max(1, math.ceil(CLS_HW[0] * w / h))
                image = cv2.resize(image, (width, CLS_HW[0]), interpolation=cv2.INTER_AREA)
            crops.append(image)
        return [
            Prediction(
                [Annotation(label, score, (0.0, 0.0, float(w), float(h)))], width=w, height=h
            )
            for (label, score), (w, h) in zip(_classify(crops, infer), source_sizes, strict=True)
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
        self.det = _Detection(params or DBParams())
        self.rec_widths = tuple(sorted(rec_widths))
        # Only the widths a job's lines need are compiled (one graph each).
        self.lazy_stages = DET_FIRST_USE | {f"rec{w}" for w in self.rec_widths}
        self.cls_thresh = cls_thresh
        self.min_text_score = min_text_score
        # The dictionary travels inside the ONNX metadata; read it now so that
        # ``predict`` never touches the files.
        self.alphabet = model_alphabet(read_model(self.paths[REC_FILE]), self.paths[REC_FILE])

    def _config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "db": asdict(self.det.params),
            "rec_widths": list(self.rec_widths),
            "cls_thresh": self.cls_thresh,
            "min_text_score": self.min_text_score,
        }

    def graphs(self) -> Mapping[str, ov.Model]:
        rec = read_model(self.paths[REC_FILE])
        graphs = {
            **self.det.graphs(self.paths[DET_FILE]),
            "cls": _cls_graph(self.paths[CLS_FILE]),
        }
        for width in self.rec_widths:
            graphs[f"rec{width}"] = with_best_class(
                with_u8_rgb_input(rec, size_hw=(REC_HEIGHT, width), mean=_MEAN, scale=_SCALE)
            )
        return graphs

    def decode_scale(self, width: int, height: int) -> int:
        # Recognition needs the resolution: on the 1280x960 demo pages a full decode
        # reads 100.00% of the characters right, a half decode 99.97% (it merges
        # words: the gaps shrink to a pixel or two) for only ~6% less time, since
        # recognition dominates. So only images twice the detector's size are reduced.
        return _largest_reduction(max(width, height), 2 * DET_SIZE)

    def predict(
        self, image: np.ndarray, infer: InferFn, source_size: tuple[int, int]
    ) -> Prediction:
        quads, _ = self.det.detect(image, infer, source_size)
        if len(quads) == 0:
            return Prediction((), width=source_size[0], height=source_size[1], text="")
        to_image = np.array(
            [image.shape[1] / source_size[0], image.shape[0] / source_size[1]], np.float32
        )
        crops = [crop_line(image, q * to_image, REC_HEIGHT) for q in quads]
        orientations = _classify(crops, infer)
        for i, (label, score) in enumerate(orientations):
            if label == "180" and score > self.cls_thresh:
                crops[i] = cv2.rotate(crops[i], cv2.ROTATE_180)
        texts = self._recognize(crops, infer)
        keep = [i for i, (text, score) in enumerate(texts) if text and score >= self.min_text_score]
        annotations = [
            Annotation(
                "text",
                texts[i][1],
                _box(quads[i]),
                polygon=tuple(quads[i].ravel().tolist()),
                text=texts[i][0],
                class_label=orientations[i][0],
                class_score=orientations[i][1],
            )
            for i in keep
        ]
        lines = reading_order(quads[keep]) if keep else []
        text = "\n".join(" ".join(annotations[j].text or "" for j in line) for line in lines)
        return Prediction(annotations, width=source_size[0], height=source_size[1], text=text)

    def predict_many(
        self, images: Sequence[np.ndarray], infer: InferFn, source_sizes: Sequence[tuple[int, int]]
    ) -> list[Prediction]:
        return predict_each(self, images, infer, source_sizes)

    def _recognize(self, crops: Sequence[np.ndarray], infer: InferFn) -> list[tuple[str, float]]:
        """Text and confidence per crop: crops are padded to the narrowest width that fits."""
        by_width: dict[int, list[int]] = {}
        for i, crop in enumerate(crops):
            width = next((w for w in self.rec_widths if w >= crop.shape[1]), self.rec_widths[-1])
            by_width.setdefault(width, []).append(i)
        results: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        for width, members in by_width.items():
            outputs = infer(f"rec{width}", [fit_width(crops[i], width) for i in members])
            for i, (confidence, best) in zip(members, outputs, strict=True):
                results[i] = ctc_decode_best(best, confidence, self.alphabet)
        return results

    @classmethod
    def load(cls, folder: Path, config: Mapping[str, Any]) -> OCRTask:
        return cls(
            folder,
            params=cls._db_params(config),
            rec_widths=config.get("rec_widths", REC_WIDTHS),
            cls_thresh=config.get("cls_thresh", 0.9),
            min_text_score=config.get("min_text_score", 0.5),
        )


def _cls_graph(path: Path) -> ov.Model:
    return with_u8_rgb_input(read_model(path), size_hw=CLS_HW, mean=_MEAN, scale=_SCALE)


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
