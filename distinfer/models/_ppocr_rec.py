"""PP-OCR's text-line stages: the orientation classifier and the recogniser.

Both take upright crops 48 pixels tall (``crop_line``) and answer for all the
lines of an ``infer`` call at once: the classifier averages its windows per line
with one reduction over all lines; the recogniser sends the lines of each width
bucket together (requests of up to ``REC_BATCH`` lines, its graphs take any
batch) and decodes them with one CTC pass per bucket.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import openvino as ov

from ._ctc import ctc_decode_batch, fit_width, with_best_class
from ._openvino import read_model, with_u8_rgb_input
from ._ppocr_det import MEAN, SCALE
from ._task import InferFn, infer_all

CLS_HW = (48, 192)
CLS_LABELS = ("0", "180")
#: Classifier windows averaged per text line (see ``cls_windows``).
CLS_WINDOWS = 3
#: Crops per request of the orientation classifier (small: per-request cost matters).
CLS_BATCH = 8
REC_HEIGHT = 48
#: Static recognition widths, each compiled as its own graph ``rec<width>``; the
#: cost of a recognition grows linearly with the width, so a line pays for the
#: narrowest bucket it fits (lines wider than the last are squeezed into it).
REC_WIDTHS = (320, 640, 960, 1280, 1920)
#: Lines per request of the recogniser (its graphs take any batch: ``GroupedStage``).
REC_BATCH = 8


def cls_graph(path: Path) -> ov.Model:
    return with_u8_rgb_input(read_model(path), size_hw=CLS_HW, mean=MEAN, scale=SCALE)


def rec_graphs(path: Path, widths: Sequence[int]) -> dict[str, ov.Model]:
    """``rec<width>`` for each width: 48 pixels tall, any batch, top class per step."""
    rec = read_model(path)
    graphs = {}
    for width in widths:
        graph = with_best_class(
            with_u8_rgb_input(rec, size_hw=(REC_HEIGHT, width), mean=MEAN, scale=SCALE)
        )
        shape = graph.inputs[0].get_partial_shape()
        shape[0] = -1
        graph.reshape({graph.inputs[0]: shape})
        graphs[f"rec{width}"] = graph
    return graphs


def cls_windows(crop: np.ndarray, max_windows: int = CLS_WINDOWS) -> list[np.ndarray]:
    """48x192 classifier inputs for one crop 48 pixels tall.

    PaddleOCR squeezes a whole line into 192 pixels; on long lines that squeeze
    flips the answer for a few percent of lines (measured on the demo pages). Up
    to ``max_windows`` unsqueezed windows, evenly spread over the line, are
    classified instead and their probabilities averaged. The windows of a long line
    are views into it.
    """
    w = crop.shape[1]
    win = CLS_HW[1]
    if w <= win:
        return [fit_width(crop, win)]
    count = min(max_windows, math.ceil(w / win))
    last = w - win  # evenly spread, rounded half to even (np.linspace(0, last, count).round())
    starts = [round(i * (last / (count - 1))) for i in range(count - 1)] + [last]
    return [crop[:, x : x + win] for x in starts]  # views: the engine stacks them into requests


def classify(crops: Sequence[np.ndarray], infer: InferFn) -> tuple[np.ndarray, np.ndarray]:
    """Orientation of each crop (48 pixels tall), in one ``infer`` call: the index into
    ``CLS_LABELS`` and its probability (float32, at most 1)."""
    if not crops:
        return np.zeros(0, np.int32), np.zeros(0, np.float32)
    windows = [cls_windows(c) for c in crops]
    outputs = infer("cls", [x for group in windows for x in group])
    probs = np.concatenate([out[0].reshape(1, -1) for out in outputs])
    counts = np.array([len(group) for group in windows])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    means = np.add.reduceat(probs, starts, axis=0) / counts[:, None].astype(np.float32)
    best = means.argmax(axis=1)
    score = np.minimum(means[np.arange(len(crops)), best], np.float32(1))
    return best.astype(np.int32), score.astype(np.float32)


def recognize(
    crops: Sequence[np.ndarray], infer: InferFn, widths: Sequence[int], alphabet: np.ndarray
) -> tuple[list[str], np.ndarray]:
    """Text and confidence (float32) of each crop: the width buckets' requests all
    started at once (``infer_all``), one CTC pass per bucket.

    A crop goes to the narrowest width that holds it, padded (or squeezed into the
    widest); ``alphabet`` is ``alphabet_array`` of the model's characters.
    """
    texts = [""] * len(crops)
    scores = np.zeros(len(crops), np.float32)
    fits = np.searchsorted(np.asarray(widths), [c.shape[1] for c in crops])
    buckets = np.minimum(fits, len(widths) - 1)
    lines = {widths[k]: np.flatnonzero(buckets == k) for k in np.unique(buckets).tolist()}
    found = infer_all(
        infer,
        {
            f"rec{width}": [fit_width(crops[i], width) for i in members.tolist()]
            for width, members in lines.items()
        },
    )
    for width, members in lines.items():
        outputs = found[f"rec{width}"]
        confidence = np.concatenate([c.reshape(1, -1) for c, _ in outputs])
        best = np.concatenate([b.reshape(1, -1) for _, b in outputs])
        read, scores[members] = ctc_decode_batch(best, confidence, alphabet)
        for i, text in zip(members.tolist(), read, strict=True):
            texts[i] = text
    return texts, scores
