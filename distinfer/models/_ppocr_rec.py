"""PP-OCR's text-line stages: the orientation classifier and the recogniser.

Both take upright crops 48 pixels tall (``crop_line``; ``TextLines`` crops a
page's lines straight into the recogniser's inputs) and answer for all the lines
of an ``infer`` call at once: the classifier averages its windows per line with
one reduction over all lines; the recogniser sends the lines of each width bucket
together (requests of up to ``REC_BATCH`` lines, its graphs take any batch) and
decodes them with one CTC pass per bucket.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import openvino as ov

from ._ctc import PAD, ctc_decode_batch, fit_width, with_best_class
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
    return classify_windows([cls_windows(c) for c in crops], infer)


def classify_windows(
    windows: Sequence[Sequence[np.ndarray]], infer: InferFn
) -> tuple[np.ndarray, np.ndarray]:
    """``classify`` of lines given as their ``cls_windows``."""
    if not windows:
        return np.zeros(0, np.int32), np.zeros(0, np.float32)
    outputs = infer("cls", [x for group in windows for x in group])
    probs = np.concatenate([out[0].reshape(1, -1) for out in outputs])
    counts = np.array([len(group) for group in windows])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    means = np.add.reduceat(probs, starts, axis=0) / counts[:, None].astype(np.float32)
    best = means.argmax(axis=1)
    score = np.minimum(means[np.arange(len(windows)), best], np.float32(1))
    return best.astype(np.int32), score.astype(np.float32)


class TextLines:
    """The text lines of one ``predict_many``, cropped straight into the recogniser's
    inputs: one ``(lines, REC_HEIGHT, width, 3)`` array per width of ``widths``.

    A line goes to the narrowest width that holds it, at the left of its row with
    ``PAD`` on the right, as ``fit_width`` pads it; a short line's classifier window
    is the left of its row. So a line's pixels are written once, where before a
    crop was copied again to pad it. A line wider than the widest input is cropped
    into an array of its own (the classifier reads it whole) and squeezed into its
    row by ``inputs``.
    """

    def __init__(self, sizes: Sequence[int], widths: Sequence[int]) -> None:
        self.sizes = list(sizes)  # each line's own crop width
        buckets = np.minimum(np.searchsorted(np.asarray(widths), self.sizes), len(widths) - 1)
        self.members: dict[int, np.ndarray] = {}
        self._arrays: dict[int, np.ndarray] = {}
        self._rows: list[np.ndarray] = [np.empty(0, np.uint8)] * len(self.sizes)
        for k in np.unique(buckets).tolist():
            members = np.flatnonzero(buckets == k)
            array = np.empty((len(members), REC_HEIGHT, widths[k], 3), np.uint8)
            self.members[widths[k]], self._arrays[widths[k]] = members, array
            for i, row in zip(members.tolist(), array, strict=True):
                self._rows[i] = row
        self._wide: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.sizes)

    def target(self, i: int) -> np.ndarray:
        """Where line ``i`` is to be cropped (``REC_HEIGHT x sizes[i] x 3``); its row's
        padding is set here."""
        size, row = self.sizes[i], self._rows[i]
        if size > row.shape[1]:
            self._wide[i] = np.empty((REC_HEIGHT, size, 3), np.uint8)
            return self._wide[i]
        row[:, size:] = PAD
        return row[:, :size]

    def line(self, i: int) -> np.ndarray:
        """Line ``i`` at its own width (a view)."""
        wide = self._wide.get(i)
        return wide if wide is not None else self._rows[i][:, : self.sizes[i]]

    def turn(self, i: int) -> None:
        """Turn line ``i`` half a turn, in place."""
        line = self.line(i)
        line[...] = line[::-1, ::-1]  # numpy copies through a buffer when they overlap

    def cls_windows(self, i: int) -> list[np.ndarray]:
        """``cls_windows`` of line ``i``; a short line's window is the left of its row."""
        row = self._rows[i]
        if self.sizes[i] <= CLS_HW[1] <= row.shape[1]:
            return [row[:, : CLS_HW[1]]]
        return cls_windows(self.line(i))

    def inputs(self) -> dict[str, list[np.ndarray]]:
        """Each recogniser stage's inputs (``rec<width>``), the wide lines squeezed in."""
        for i, line in self._wide.items():
            row = self._rows[i]
            row[...] = fit_width(line, row.shape[1])  # squeezed, as fit_width does it
        return {f"rec{width}": list(array) for width, array in self._arrays.items()}


def recognize(
    lines: TextLines, infer: InferFn, alphabet: np.ndarray
) -> tuple[list[str], np.ndarray]:
    """Text and confidence (float32) of each line: the width buckets' requests all
    started at once (``infer_all``), one CTC pass per bucket. ``alphabet`` is
    ``alphabet_array`` of the model's characters."""
    texts = [""] * len(lines)
    scores = np.zeros(len(lines), np.float32)
    found = infer_all(infer, lines.inputs())
    for width, members in lines.members.items():
        outputs = found[f"rec{width}"]
        confidence = np.concatenate([c.reshape(1, -1) for c, _ in outputs])
        best = np.concatenate([b.reshape(1, -1) for _, b in outputs])
        read, scores[members] = ctc_decode_batch(best, confidence, alphabet)
        for i, text in zip(members.tolist(), read, strict=True):
            texts[i] = text
    return texts, scores
