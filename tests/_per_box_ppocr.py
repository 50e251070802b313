"""The bundled PP-OCR tasks as they were before predictions became columnar: the oracle
of the columnar equivalence test.

A frozen copy of the per-box code (a Python loop over contours, an ``Annotation`` per
box, one recogniser request per line, reading order and CTC decoding line by line),
run on the same real engine as the tasks. It reuses only the image operations that
did not change (letterbox, crop warp, padding, quad ordering, unclip). Do not
"improve" it: it is what the new code must equal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from distinfer import Annotation, Prediction
from distinfer.models._ctc import BLANK, crop_line, fit_width
from distinfer.models._db import DBParams, letterbox, order_quads, unclip_rect
from distinfer.models._task import InferFn
from distinfer.models.ppocr import (
    CLS_HW,
    CLS_LABELS,
    CLS_WINDOWS,
    DET_SHAPES,
    REC_HEIGHT,
    OCRTask,
    det_stage,
)


def _box_score(prob: np.ndarray, quad: np.ndarray) -> float:
    h, w = prob.shape
    x0 = min(max(math.floor(float(quad[:, 0].min())), 0), w - 1)
    x1 = min(max(math.ceil(float(quad[:, 0].max())), 0), w - 1)
    y0 = min(max(math.floor(float(quad[:, 1].min())), 0), h - 1)
    y1 = min(max(math.ceil(float(quad[:, 1].max())), 0), h - 1)
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    shifted = (quad - np.array([x0, y0], np.float32)).round().astype(np.int32)
    cv2.fillPoly(mask, [shifted], 1)
    return float(cv2.mean(prob[y0 : y1 + 1, x0 : x1 + 1], mask)[0])


def db_boxes(prob: np.ndarray, p: DBParams) -> tuple[np.ndarray, np.ndarray]:
    bitmap = (prob > p.thresh).view(np.uint8)
    if p.dilate:
        bitmap = cv2.dilate(bitmap, np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    quads: list[np.ndarray] = []
    scores: list[float] = []
    for contour in contours[: p.max_candidates]:
        rect = cv2.minAreaRect(contour)
        if min(rect[1]) < p.min_size:
            continue
        score = _box_score(prob, cv2.boxPoints(rect))
        if score < p.box_thresh:
            continue
        grown = unclip_rect(rect, p.unclip_ratio)
        if min(grown[1]) < p.min_size + 2:
            continue
        quads.append(cv2.boxPoints(grown))
        scores.append(score)
    if not quads:
        return np.zeros((0, 4, 2), np.float32), np.zeros((0,), np.float32)
    return order_quads(np.stack(quads)), np.asarray(scores, np.float32)


def reading_order(quads: np.ndarray) -> list[list[int]]:
    if len(quads) == 0:
        return []
    top, bottom = quads[:, :, 1].min(axis=1), quads[:, :, 1].max(axis=1)
    centre, height, left = (top + bottom) / 2, bottom - top, quads[:, :, 0].min(axis=1)
    lines: list[list[int]] = []
    for i in np.argsort(centre, kind="stable").tolist():
        if lines:
            line = lines[-1]
            if abs(centre[i] - centre[line].mean()) < 0.5 * height[line].mean():
                line.append(i)
                continue
        lines.append([i])
    return [sorted(line, key=lambda j: float(left[j])) for line in lines]


def _box(quad: np.ndarray) -> tuple[float, float, float, float]:
    (x1, y1), (x2, y2) = quad.min(axis=0).tolist(), quad.max(axis=0).tolist()
    return x1, y1, x2, y2


def detect(
    image: np.ndarray, infer: InferFn, source_size: tuple[int, int], params: DBParams
) -> tuple[np.ndarray, np.ndarray]:
    stage = det_stage(image.shape[1], image.shape[0])
    canvas, to_image = letterbox(image, DET_SHAPES[stage])
    [[prob, *_]] = infer(stage, [canvas])
    quads, scores = db_boxes(prob.reshape(prob.shape[-2:]), params)
    width, height = source_size
    scale = np.array([width / image.shape[1], height / image.shape[0]], np.float32)
    quads *= scale * to_image
    np.clip(quads[..., 0], 0, width, out=quads[..., 0])
    np.clip(quads[..., 1], 0, height, out=quads[..., 1])
    order = [i for line in reading_order(quads) for i in line]
    return quads[order], scores[order]


def predict_det(
    image: np.ndarray, infer: InferFn, source_size: tuple[int, int], params: DBParams
) -> Prediction:
    quads, scores = detect(image, infer, source_size, params)
    annotations = [
        Annotation("text", float(s), _box(q), polygon=tuple(q.ravel().tolist()))
        for q, s in zip(quads, scores, strict=True)
    ]
    return Prediction(annotations, width=source_size[0], height=source_size[1])


def cls_windows(crop: np.ndarray) -> list[np.ndarray]:
    w = crop.shape[1]
    win = CLS_HW[1]
    if w <= win:
        return [fit_width(crop, win)]
    count = min(CLS_WINDOWS, math.ceil(w / win))
    starts = np.linspace(0, w - win, count).round().astype(int).tolist()
    return [np.ascontiguousarray(crop[:, x : x + win]) for x in starts]


def classify(crops: Sequence[np.ndarray], infer: InferFn) -> list[tuple[str, float]]:
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


def predict_cls(image: np.ndarray, infer: InferFn, source_size: tuple[int, int]) -> Prediction:
    h, w = image.shape[:2]
    if (h, w) != CLS_HW:
        width = max(1, math.ceil(CLS_HW[0] * w / h))
        image = cv2.resize(image, (width, CLS_HW[0]), interpolation=cv2.INTER_AREA)
    [(label, score)] = classify([image], infer)
    w, h = source_size
    return Prediction([Annotation(label, score, (0.0, 0.0, float(w), float(h)))], w, h)


def ctc_decode_best(
    best: np.ndarray, confidence: np.ndarray, alphabet: Sequence[str]
) -> tuple[str, float]:
    best = best.reshape(-1)
    keep = best != BLANK
    keep[1:] &= best[1:] != best[:-1]
    if not keep.any():
        return "", 0.0
    text = "".join([alphabet[i] for i in best[keep].tolist()])
    score = float(confidence.reshape(-1)[keep].mean())
    return text, min(score, 1.0)


def recognize(
    task: OCRTask, crops: Sequence[np.ndarray], infer: InferFn
) -> list[tuple[str, float]]:
    by_width: dict[int, list[int]] = {}
    for i, crop in enumerate(crops):
        width = next((w for w in task.rec_widths if w >= crop.shape[1]), task.rec_widths[-1])
        by_width.setdefault(width, []).append(i)
    results: list[tuple[str, float]] = [("", 0.0)] * len(crops)
    for width, members in by_width.items():
        for i in members:  # one request per line
            [(confidence, best)] = infer(f"rec{width}", [fit_width(crops[i], width)])
            results[i] = ctc_decode_best(best, confidence, task.alphabet)
    return results


def predict_ocr(
    task: OCRTask, image: np.ndarray, infer: InferFn, source_size: tuple[int, int]
) -> Prediction:
    quads, _ = detect(image, infer, source_size, task.det.params)
    if len(quads) == 0:
        return Prediction((), width=source_size[0], height=source_size[1], text="")
    to_image = np.array(
        [image.shape[1] / source_size[0], image.shape[0] / source_size[1]], np.float32
    )
    crops = [crop_line(image, q * to_image, REC_HEIGHT) for q in quads]
    orientations = classify(crops, infer)
    for i, (label, score) in enumerate(orientations):
        if label == "180" and score > task.cls_thresh:
            crops[i] = cv2.rotate(crops[i], cv2.ROTATE_180)
    texts = recognize(task, crops, infer)
    keep = [i for i, (text, score) in enumerate(texts) if text and score >= task.min_text_score]
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
