"""Columnar equivalence: predictions built as columns equal the per-box results of before.

The bundled PP-OCR tasks are compared with ``_per_box_ppocr`` (the per-box code,
frozen) on the same real engine; the tiny opset models with what the per-box code
gave on their cases (``_tiny_cases``). Labels, boxes, polygons and texts must be
equal (boxes and polygons as the float32 the results hold), scores within 1e-6.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _per_box_ppocr as per_box
import cv2
import numpy as np
import pytest
from _tiny_cases import CASES, EXPECTED, run_case

from distinfer import Prediction
from distinfer._demo import render_crops, render_layout
from distinfer.engine._engine import Engine
from distinfer.models._db import DBParams, db_boxes, reading_order
from distinfer.models.ppocr import bundled

SCORE_TOLERANCE = 1e-6


def f32(values: Any) -> list[float]:
    return np.float32(values).tolist()  # type: ignore[no-any-return]


def records(new: Prediction) -> list[tuple[Any, ...]]:
    """One record per box, read from the columns: label, score, box, polygon, text,
    class label, class score."""
    n, labels = len(new.boxes), new.labels
    polygons: list[Any] = [None] * n
    if new.polygon_offsets is not None and new.polygon_points is not None:
        bounds = new.polygon_offsets.tolist()
        polygons = [
            new.polygon_points[a:b].reshape(-1).tolist() or None
            for a, b in itertools.pairwise(bounds)
        ]
    classes = new.class_ids.tolist() if new.class_ids is not None else [-1] * n
    class_scores = new.class_scores.tolist() if new.class_scores is not None else [np.nan] * n
    return [
        (
            labels[new.label_ids[i]],
            float(new.scores[i]),
            new.boxes[i].tolist(),
            polygons[i],
            new.texts[i] if new.texts is not None else None,
            labels[classes[i]] if classes[i] >= 0 else None,
            None if np.isnan(class_scores[i]) else class_scores[i],
        )
        for i in range(n)
    ]


def expected_records(old: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (
            a["label"],
            a["score"],
            f32([a["x1"], a["y1"], a["x2"], a["y2"]]),
            None if a["polygon"] is None else f32(a["polygon"]),
            a["text"],
            a["class_label"],
            a["class_score"],
        )
        for a in old["annotations"]
    ]


def assert_equivalent(new: Prediction, old: dict[str, Any], *, any_order: bool = False) -> None:
    """``new`` (columns) against ``old`` (``Prediction.to_dict()`` of the per-box code).

    ``any_order``: boxes of equal score may come in any order (model_api sorts them
    unstably), so both sides are sorted by box and label first.
    """
    assert (new.width, new.height, new.text) == (old["width"], old["height"], old["text"])
    got, want = records(new), expected_records(old)
    if any_order:
        got.sort(key=lambda r: (r[2], r[0]))
        want.sort(key=lambda r: (r[2], r[0]))
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert (g[0], g[2], g[3], g[4], g[5]) == (w[0], w[2], w[3], w[4], w[5])
        assert g[1] == pytest.approx(w[1], abs=SCORE_TOLERANCE)
        assert (g[6] is None) == (w[6] is None)
        assert g[6] is None or g[6] == pytest.approx(w[6], abs=SCORE_TOLERANCE)
    assert new.annotations == Prediction.from_row(new.to_row()).annotations
    assert new.tensors.keys() == old["tensors"].keys()
    for name, value in new.tensors.items():
        assert value.tolist() == old["tensors"][name]


# -- bundled models -------------------------------------------------------------------


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    """Pages (one box a line), a page of two half pages shifted (several boxes a line),
    a portrait page, a page upside down, a blank page."""
    rng = np.random.default_rng(2024)
    pages = [render_layout(rng).image for _ in range(3)]
    halves = np.hstack([pages[0][:, :640], np.roll(pages[1], 15, axis=0)[:, 640:]])
    portrait = cv2.rotate(pages[1], cv2.ROTATE_90_CLOCKWISE)[:, 100:700]
    upside_down = cv2.rotate(pages[2], cv2.ROTATE_180)
    blank = np.full((480, 640, 3), 240, np.uint8)
    return [np.ascontiguousarray(x) for x in (*pages, halves, portrait, upside_down, blank)]


def jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    return bytes(data.tobytes())


@pytest.fixture(scope="module")
def ocr() -> Iterator[Engine]:
    with Engine(bundled("ppocr")) as engine:
        yield engine


def test_ppocr_det_columns_equal_the_per_box_boxes(images: list[np.ndarray]) -> None:
    with Engine(bundled("ppocr-det")) as engine:
        for image in images:
            for data in (image, jpeg(image)):  # full size, and a reduced decode
                pixels, size = engine.decode(data)
                new = engine.task.predict(pixels, engine.infer, size)
                old = per_box.predict_det(pixels, engine.infer, size, DBParams())
                assert_equivalent(new, old.to_dict())
        pixels = [engine.decode(jpeg(image)) for image in images]
        many = engine.task.predict_many(
            [p for p, _ in pixels], engine.infer, [s for _, s in pixels]
        )
        ahead = engine.task.predict_many(  # each page preprocessed as the engine does
            [p for p, _ in pixels],
            engine.infer,
            [s for _, s in pixels],
            [engine.task.preprocess(p) for p, _ in pixels],
        )
        for new, pre, (image, size) in zip(many, ahead, pixels, strict=True):
            old = per_box.predict_det(image, engine.infer, size, DBParams()).to_dict()
            assert_equivalent(new, old)
            assert_equivalent(pre, old)


def test_ppocr_columns_equal_the_per_box_text_lines(ocr: Engine, images: list[np.ndarray]) -> None:
    task = ocr.task
    found = 0
    for image in images:
        size = (image.shape[1], image.shape[0])
        new = task.predict(image, ocr.infer, size)
        old = per_box.predict_ocr(task, image, ocr.infer, size)  # type: ignore[arg-type]
        assert_equivalent(new, old.to_dict())
        found += len(new.boxes)
    assert found > 40
    sizes = [(i.shape[1], i.shape[0]) for i in images]
    many = task.predict_many(images, ocr.infer, sizes)
    ahead = task.predict_many(images, ocr.infer, sizes, [task.preprocess(i) for i in images])
    for new, pre, image, size in zip(many, ahead, images, sizes, strict=True):
        old = per_box.predict_ocr(task, image, ocr.infer, size).to_dict()  # type: ignore[arg-type]
        assert_equivalent(new, old)
        assert_equivalent(pre, old)


def test_ppocr_cls_columns_equal_the_per_box_orientation() -> None:
    crops = render_crops(np.random.default_rng(5), 11)
    for k in range(0, 11, 3):
        crops[k] = np.ascontiguousarray(crops[k][::-1, ::-1])
    crops.append(np.ascontiguousarray(crops[1][:, :120]))  # not 48x192: resized
    with Engine(bundled("ppocr-cls")) as engine:
        sizes = [(c.shape[1], c.shape[0]) for c in crops]
        batch = engine.task.predict_many(crops, engine.infer, sizes)
        ahead = engine.task.predict_many(
            crops, engine.infer, sizes, [engine.task.preprocess(c) for c in crops]
        )
        for new, pre, crop, size in zip(batch, ahead, crops, sizes, strict=True):
            old = per_box.predict_cls(crop, engine.infer, size).to_dict()
            assert_equivalent(new, old)
            assert_equivalent(pre, old)


# -- the geometry, on random maps -------------------------------------------------------


def random_map(rng: np.random.Generator) -> np.ndarray:
    prob = np.zeros((240, 320), np.float32)
    for _ in range(int(rng.integers(0, 25))):
        x, y = int(rng.integers(0, 300)), int(rng.integers(0, 230))
        w, h = int(rng.integers(1, 120)), int(rng.integers(1, 30))
        prob[y : y + h, x : x + w] = rng.uniform(0.2, 1.0)
    angle = float(rng.uniform(-20, 20))
    turn = cv2.getRotationMatrix2D((160, 120), angle, 1.0)
    return cv2.warpAffine(prob, turn, (320, 240))


@pytest.mark.parametrize("seed", range(40))
def test_db_boxes_and_reading_order_equal_the_per_box_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    prob = random_map(rng)
    params = DBParams(box_thresh=float(rng.uniform(0.3, 0.7)), min_size=float(rng.uniform(1, 5)))
    quads, scores = db_boxes(prob, params)
    old_quads, old_scores = per_box.db_boxes(prob, params)
    assert quads.tolist() == old_quads.tolist() and scores.tolist() == old_scores.tolist()
    assert reading_order(quads) == per_box.reading_order(quads)
    # lines of several boxes, ties in x, boxes of equal centres
    jitter = quads + rng.integers(-3, 4, (len(quads), 1, 2)).astype(np.float32)
    jitter[::3, :, 0] = quads[0, 0, 0] if len(quads) else 0
    assert reading_order(jitter) == per_box.reading_order(jitter)


# -- tiny opset models ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_tiny_model_columns_equal_the_per_box_results(name: str, tmp_path: Path) -> None:
    expected = json.loads(EXPECTED.read_text())[name]
    assert_equivalent(run_case(name, tmp_path), expected, any_order=True)
