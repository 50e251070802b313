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


def box_scores(prob: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """Mean probability inside each quad (``N x 4 x 2``), each on its bounding window only.

    The windows and the integer corners are computed for all quads at once; only
    the fill and the masked mean (OpenCV, no vectorised form over polygons) run
    per quad.
    """
    h, w = prob.shape
    low, high = np.floor(quads.min(axis=1)), np.ceil(quads.max(axis=1))
    limit = np.array([w - 1, h - 1])
    x0y0 = np.clip(low, 0, limit).astype(np.int64)
    x1y1 = np.clip(high, 0, limit).astype(np.int64)
    corners = (quads - x0y0[:, None, :].astype(np.float32)).round().astype(np.int32)
    scores = np.empty(len(quads), np.float64)
    for i, ((x0, y0), (x1, y1)) in enumerate(zip(x0y0.tolist(), x1y1.tolist(), strict=True)):
        mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
        cv2.fillPoly(mask, [corners[i]], 1)
        scores[i] = cv2.mean(prob[y0 : y1 + 1, x0 : x1 + 1], mask)[0]
    return scores


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

    OpenCV finds each region's rectangle and corners one call per region (it has no
    vectorised form); the filters, the scores' windows and the growth run over all
    regions at once.
    """
    p = params or DBParams()
    if prob.ndim != 2:
        raise ValueError(f"expected a (H, W) probability map, got shape {prob.shape}")
    # 255 above the threshold: OpenCV's compare takes 0.6 of numpy's time (a 640x480 map)
    bitmap = cv2.compare(np.asarray(prob, np.float32), p.thresh, cv2.CMP_GT)
    if p.dilate:
        bitmap = cv2.dilate(bitmap, _DILATE_KERNEL)
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    rects = [cv2.minAreaRect(c) for c in contours[: p.max_candidates]]
    # centre x, y, width, height, angle: the values OpenCV gave, as doubles
    found = np.array([(cx, cy, rw, rh, a) for (cx, cy), (rw, rh), a in rects], np.float64)
    found = found.reshape(-1, 5)
    found = found[np.minimum(found[:, 2], found[:, 3]) >= p.min_size]
    if len(found) == 0:
        return np.zeros((0, 4, 2), np.float32), np.zeros((0,), np.float32)
    scores = box_scores(prob, _box_points(found))
    found, scores = found[scores >= p.box_thresh], scores[scores >= p.box_thresh]
    grown = _unclip(found, p.unclip_ratio)
    big = np.minimum(grown[:, 2], grown[:, 3]) >= p.min_size + 2
    if not big.any():
        return np.zeros((0, 4, 2), np.float32), np.zeros((0,), np.float32)
    return order_quads(_box_points(grown[big])), scores[big].astype(np.float32)


def _box_points(rects: np.ndarray) -> np.ndarray:
    """``cv2.boxPoints`` of each rectangle (centre x, y, width, height, angle), ``N x 4 x 2``.

    OpenCV's own corners, one call each: they decide the boxes to the last bit, and
    its formula has changed between versions.
    """
    return np.stack(
        [cv2.boxPoints(((cx, cy), (rw, rh), a)) for cx, cy, rw, rh, a in rects.tolist()]
    )


def _unclip(rects: np.ndarray, ratio: float) -> np.ndarray:
    """``unclip_rect`` of each rectangle (centre x, y, width, height, angle)."""
    rw, rh = rects[:, 2], rects[:, 3]
    perimeter = 2.0 * (rw + rh)
    with np.errstate(divide="ignore", invalid="ignore"):
        distance = np.where(perimeter > 0, rw * rh * ratio / perimeter, 0.0)
    grown = rects.copy()
    grown[:, 2] = rw + 2 * distance
    grown[:, 3] = rh + 2 * distance
    return grown


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
    if (rw, rh) == (w, h) == (width, height):  # already the input's size: no copy
        return np.ascontiguousarray(image), 1.0
    # Only the padding is cleared: the image covers the rest.
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[rh:] = 0
    canvas[:rh, rw:] = 0
    if (rw, rh) == (w, h):
        canvas[:h, :w] = image
    else:
        interp = cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR
        cv2.resize(image, (rw, rh), dst=canvas[:rh, :rw], interpolation=interp)
    return canvas, w / rw


def reading_order(quads: np.ndarray) -> list[list[int]]:
    """Group quads into lines, top to bottom, each line left to right (indices).

    A box joins the current line when its vertical centre lies within half the
    line's mean box height of the line's mean centre. Taking boxes by centre makes
    this a walk (each box depends on the line so far); its means are kept per line
    and recomputed only when a box joins, so a page of one box per line costs a
    comparison per box. Within each line, boxes are then sorted left to right over
    all lines at once.
    """
    if len(quads) == 0:
        return []
    top, bottom = quads[:, :, 1].min(axis=1), quads[:, :, 1].max(axis=1)
    centre, height, left = (top + bottom) / 2, bottom - top, quads[:, :, 0].min(axis=1)
    by_centre = np.argsort(centre, kind="stable")
    line_of = np.empty(len(quads), np.int64)
    line: list[int] = []
    mean_centre = half_height = None
    lines = -1
    for i in by_centre.tolist():
        if line and abs(centre[i] - mean_centre) < half_height:
            line.append(i)
            mean_centre, half_height = centre[line].mean(), 0.5 * height[line].mean()
        else:
            line, lines = [i], lines + 1
            mean_centre, half_height = centre[i], 0.5 * height[i]
        line_of[i] = lines
    rank = np.empty(len(quads), np.int64)
    rank[by_centre] = np.arange(len(quads))  # ties in ``left`` keep the order of joining
    order = np.lexsort((rank, left, line_of))
    bounds = np.flatnonzero(np.diff(line_of[order])) + 1
    return [part.tolist() for part in np.split(order, bounds)]
