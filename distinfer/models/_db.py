"""Text detection geometry: the detector's input, DB box extraction, reading order.

``letterbox`` fits a page into the detector's input. The DB
(Differentiable Binarization) detector predicts, for every pixel, the
probability that it belongs to the shrunk core of a text region. Boxes come out
of it in four steps: threshold the map, find the connected regions' contours,
fit a minimum-area rectangle to each and score it by the mean probability
inside, then grow ("unclip") the rectangle back to the full text extent
(``db_boxes``). ``reading_order`` then groups the boxes into lines.

>>> prob = np.zeros((64, 128), np.float32)
>>> prob[20:30, 10:100] = 0.9
>>> quads, scores = db_boxes(prob)
>>> quads.round().tolist()  # tl, tr, br, bl: the core grown back to the text extent
[[[3.0, 13.0], [107.0, 13.0], [107.0, 37.0], [3.0, 37.0]]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class DBParams:
    """Post-processing thresholds (PaddleOCR's defaults for its DB detectors).

    ``thresh`` binarizes the map; ``box_thresh`` drops boxes whose mean probability
    is lower; ``unclip_ratio`` sets how far a box grows: by ``area * ratio /
    perimeter`` on each side; boxes whose short side is under ``min_size`` map
    pixels are noise.
    """

    thresh: float = 0.3
    box_thresh: float = 0.5
    unclip_ratio: float = 1.6
    max_candidates: int = 1000
    min_size: float = 3.0
    dilate: bool = True


_DILATE_KERNEL = np.ones((2, 2), np.uint8)


def _box_score(prob: np.ndarray, quad: np.ndarray) -> float:
    """Mean probability inside ``quad``, computed on its bounding window only."""
    h, w = prob.shape
    x0 = min(max(math.floor(float(quad[:, 0].min())), 0), w - 1)
    x1 = min(max(math.ceil(float(quad[:, 0].max())), 0), w - 1)
    y0 = min(max(math.floor(float(quad[:, 1].min())), 0), h - 1)
    y1 = min(max(math.ceil(float(quad[:, 1].max())), 0), h - 1)
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    shifted = (quad - np.array([x0, y0], np.float32)).round().astype(np.int32)
    cv2.fillPoly(mask, [shifted], 1)
    return float(cv2.mean(prob[y0 : y1 + 1, x0 : x1 + 1], mask)[0])


def order_quads(points: np.ndarray) -> np.ndarray:
    """Order each quad's corners clockwise from the top-left: tl, tr, br, bl.

    ``points`` is ``(N, 4, 2)``; the two leftmost corners give tl (upper) and bl,
    the two rightmost tr (upper) and br.

    >>> order_quads(np.array([[[9, 9], [0, 0], [9, 0], [0, 9]]]))[0].tolist()
    [[0.0, 0.0], [9.0, 0.0], [9.0, 9.0], [0.0, 9.0]]
    """
    pts = np.asarray(points, np.float32).reshape(-1, 4, 2)
    by_x = np.take_along_axis(pts, np.argsort(pts[:, :, 0], axis=1, kind="stable")[..., None], 1)
    left, right = by_x[:, :2], by_x[:, 2:]
    left = np.take_along_axis(left, np.argsort(left[:, :, 1], axis=1, kind="stable")[..., None], 1)
    right = np.take_along_axis(
        right, np.argsort(right[:, :, 1], axis=1, kind="stable")[..., None], 1
    )
    return np.stack([left[:, 0], right[:, 0], right[:, 1], left[:, 1]], axis=1)


def unclip_rect(
    rect: tuple[tuple[float, float], tuple[float, float], float], ratio: float
) -> tuple[tuple[float, float], tuple[float, float], float]:
    """Grow a rotated rectangle by ``area * ratio / perimeter`` on every side.

    PaddleOCR offsets the polygon with pyclipper (round joins) and fits a
    minimum-area rectangle to the result; for a rectangle that is exactly the
    rectangle grown by the offset distance on each side, computed here directly.
    """
    (cx, cy), (rw, rh), angle = rect
    perimeter = 2.0 * (rw + rh)
    distance = rw * rh * ratio / perimeter if perimeter > 0 else 0.0
    return (cx, cy), (rw + 2 * distance, rh + 2 * distance), angle


def db_boxes(prob: np.ndarray, params: DBParams | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Text quads and their scores from a ``(H, W)`` probability map.

    Returns ``(quads, scores)``: ``quads`` is ``(N, 4, 2)`` float32 corners in map
    pixels, ordered tl, tr, br, bl; ``scores`` is ``(N,)`` float32 mean
    probabilities. Order follows OpenCV's contour order (not reading order).
    """
    p = params or DBParams()
    if prob.ndim != 2:
        raise ValueError(f"expected a (H, W) probability map, got shape {prob.shape}")
    bitmap = (prob > p.thresh).view(np.uint8)
    if p.dilate:
        bitmap = cv2.dilate(bitmap, _DILATE_KERNEL)
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


def letterbox(image: np.ndarray, size_hw: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Resize ``image`` to fit ``size_hw`` (height, width) keeping its aspect, pad bottom/right.

    Returns the u8 canvas and the factor from canvas pixels back to image pixels.

    >>> canvas, to_image = letterbox(np.zeros((960, 1280, 3), np.uint8), (480, 640))
    >>> canvas.shape, to_image
    ((480, 640, 3), 2.0)
    """
    h, w = image.shape[:2]
    height, width = size_hw
    ratio = min(width / w, height / h)
    rw, rh = max(1, min(width, round(w * ratio))), max(1, min(height, round(h * ratio)))
    canvas = np.zeros((height, width, 3), np.uint8)
    if (rw, rh) == (w, h):
        canvas[:h, :w] = image
    else:
        interp = cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR
        cv2.resize(image, (rw, rh), dst=canvas[:rh, :rw], interpolation=interp)
    return canvas, w / rw


def reading_order(quads: np.ndarray) -> list[list[int]]:
    """Group quads into lines, top to bottom, each line left to right (indices).

    A box joins the current line when its vertical centre lies within half the
    line's mean box height of the line's mean centre.
    """
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
