"""PP-OCR's text detector: pages in, text quads in source pixels out, in reading order.

Each page is letterboxed into the detector shape that holds it (``DET_SHAPES``,
one compiled graph each), the DB probability map becomes quads (``_db``), and
the quads are scaled back to source pixels, clipped and put in reading order,
all as arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import openvino as ov

from ..engine._prediction import Prediction
from ._db import DBParams, db_boxes, letterbox, reading_order
from ._openvino import read_model, with_u8_rgb_input
from ._task import InferFn, infer_all

#: PaddleOCR normalises every stage to [-1, 1]: (x / 255 - 0.5) / 0.5.
MEAN = (127.5, 127.5, 127.5)
SCALE = (127.5, 127.5, 127.5)

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
#: The label of every text box.
TEXT_LABELS = ("text",)


def det_stage(width: int, height: int) -> str:
    """The detector graph (``DET_SHAPES``) for an image of ``width`` x ``height``.

    >>> det_stage(1280, 960), det_stage(2480, 3508), det_stage(1000, 1000)
    ('det-wide', 'det-tall', 'det')
    """
    ratio = DET_SIZE / max(width, height)
    fit_h, fit_w = round(height * ratio), round(width * ratio)
    return next(name for name, (h, w) in DET_SHAPES.items() if fit_h <= h and fit_w <= w)


class TextDetector:
    """PP-OCR DB detector on static inputs: letterbox in, quads in source pixels out."""

    def __init__(self, params: DBParams) -> None:
        self.params = params

    def graphs(self, path: Path) -> dict[str, ov.Model]:
        model = read_model(path)
        return {
            name: with_u8_rgb_input(model, size_hw=shape, mean=MEAN, scale=SCALE)
            for name, shape in DET_SHAPES.items()
        }

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """The image letterboxed to its detector shape, and the factor back to its pixels."""
        return letterbox(image, DET_SHAPES[det_stage(image.shape[1], image.shape[0])])

    def detect_many(
        self,
        images: Sequence[np.ndarray],
        infer: InferFn,
        source_sizes: Sequence[tuple[int, int]],
        boxed: Sequence[tuple[np.ndarray, float]] | None = None,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Quads ``(N, 4, 2)`` in source pixels (reading order) and their scores, per image;
        the images of each detector shape in one ``infer_all`` call. ``boxed``: each
        image's ``preprocess``, if done."""
        stages = [det_stage(image.shape[1], image.shape[0]) for image in images]
        if boxed is None:
            boxed = [self.preprocess(image) for image in images]
        picked = {s: [i for i, t in enumerate(stages) if t == s] for s in dict.fromkeys(stages)}
        by_stage = infer_all(
            infer, {stage: [boxed[i][0] for i in items] for stage, items in picked.items()}
        )
        outputs: list[list[np.ndarray]] = [[] for _ in images]
        for stage, items in picked.items():
            for i, out in zip(items, by_stage[stage], strict=True):
                outputs[i] = out
        found = []
        for image, (_, to_image), (prob, *_), (width, height) in zip(
            images, boxed, outputs, source_sizes, strict=True
        ):
            quads, scores = db_boxes(prob.reshape(prob.shape[-2:]), self.params)
            scale = np.array([width / image.shape[1], height / image.shape[0]], np.float32)
            quads *= scale * to_image
            # Inside the image: two ufuncs (np.clip's Python wrapper costs more than both).
            np.minimum(np.maximum(quads, 0, out=quads), (width, height), out=quads)
            order = [i for line in reading_order(quads) for i in line]
            found.append((quads[order], scores[order]))
        return found


def text_boxes(
    quads: np.ndarray,
    scores: np.ndarray,
    size: tuple[int, int],
    *,
    labels: Sequence[str] = TEXT_LABELS,
    texts: Sequence[str] | None = None,
    class_ids: np.ndarray | None = None,
    class_scores: np.ndarray | None = None,
    text: str | None = None,
) -> Prediction:
    """A prediction of text boxes (label ``labels[0]``): each quad its polygon, its
    bounds the box, with the recognised ``texts`` and orientation classes if given."""
    n = len(quads)
    return Prediction.from_arrays(
        np.concatenate([quads.min(axis=1), quads.max(axis=1)], axis=1).reshape(n, 4),
        scores,
        np.zeros(n, np.int32),
        labels,
        width=size[0],
        height=size[1],
        polygon_offsets=np.arange(0, 4 * n + 1, 4),
        polygon_points=quads.reshape(-1, 2),
        texts=texts,
        class_ids=class_ids,
        class_scores=class_scores,
        text=text,
    )
