"""The bundled PP-OCR tasks: DB boxes, CTC decoding, orientation, and real OCR accuracy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import openvino as ov
import pytest

from distinfer._demo import Page, render_crops, render_layout, write_pages
from distinfer._errors import ConfigError, ModelError
from distinfer.engine._engine import Engine
from distinfer.engine._prediction import Prediction
from distinfer.models._ctc import (
    LineWarps,
    crop_line,
    crop_lines,
    ctc_alphabet,
    ctc_decode_best,
    ctc_greedy_decode,
    fit_width,
    with_best_class,
)
from distinfer.models._db import (
    DBParams,
    db_boxes,
    letterbox,
    order_quads,
    reading_order,
    unclip_rect,
)
from distinfer.models._openvino import read_model, with_u8_rgb_input
from distinfer.models._ppocr_rec import TextLines, cls_windows
from distinfer.models._task import Task
from distinfer.models.ppocr import (
    CLS_FILE,
    DET_FILE,
    REC_FILE,
    OCRTask,
    TextDetectionTask,
    TextOrientationTask,
    bundled,
    bundled_models_dir,
)

# -- pure functions -------------------------------------------------------------


def test_ctc_greedy_decode_collapses_repeats_and_drops_blanks() -> None:
    alphabet = ctc_alphabet("a\nb\nc")  # blank, a, b, c, space
    steps = [0, 1, 1, 0, 1, 4, 2, 2, 3, 0]  # "_aa_a bbc_" -> "aa bc"
    probs = np.full((len(steps), len(alphabet)), 0.05, np.float32)
    probs[np.arange(len(steps)), steps] = 0.8
    probs[4, 1] = 0.6
    text, score = ctc_greedy_decode(probs, alphabet)
    assert text == "aa bc"
    # kept steps: 1 (a), 4 (a, 0.6), 5 (space), 6 (b), 8 (c)
    assert score == pytest.approx((0.8 + 0.6 + 0.8 + 0.8 + 0.8) / 5)


def test_ctc_decode_of_only_blanks_is_empty_with_zero_confidence() -> None:
    probs = np.zeros((6, 4), np.float32)
    probs[:, 0] = 1.0
    assert ctc_greedy_decode(probs, ctc_alphabet("a\nb")) == ("", 0.0)


def test_ctc_decode_refuses_a_mismatched_alphabet() -> None:
    with pytest.raises(ValueError, match="classes"):
        ctc_greedy_decode(np.zeros((3, 5), np.float32), ctc_alphabet("a"))


def test_recognition_alphabet_comes_from_the_model_and_matches_its_classes() -> None:
    task = OCRTask()
    assert len(task.alphabet) == 18710  # blank + 18708 dictionary characters + space
    assert task.alphabet[0] == "" and task.alphabet[-1] == " "
    assert set("0123456789abcXYZ.-") <= set(task.alphabet)


def test_db_boxes_finds_each_region_scores_it_and_grows_it_back() -> None:
    prob = np.zeros((200, 300), np.float32)
    prob[20:40, 20:220] = 0.9  # a text line core
    prob[100:130, 50:150] = 0.7  # another
    prob[160:180, 10:200] = 0.35  # above the pixel threshold, under the box threshold
    prob[190:192, 250:252] = 0.9  # specks are noise
    quads, scores = db_boxes(prob, DBParams(thresh=0.3, box_thresh=0.5, unclip_ratio=1.5))
    assert quads.shape == (2, 4, 2)
    first, second = sorted(range(2), key=lambda i: float(quads[i, 0, 1]))
    x1, y1 = quads[first].min(axis=0)
    x2, y2 = quads[first].max(axis=0)
    # 200x20 core: grown by 200*20*1.5/440 = 13.6 px per side (plus the dilated pixel)
    assert (x1, y1, x2, y2) == pytest.approx((6, 6, 234, 54), abs=1.5)
    assert scores[first] == pytest.approx(0.9 * 200 * 20 / (201 * 21), abs=0.03)
    assert 0.6 < scores[second] < 0.7


def test_db_boxes_of_an_empty_map_is_empty() -> None:
    quads, scores = db_boxes(np.zeros((64, 64), np.float32))
    assert quads.shape == (0, 4, 2) and scores.shape == (0,)


def test_unclip_grows_each_side_by_area_times_ratio_over_perimeter() -> None:
    (cx, cy), (w, h), angle = unclip_rect(((50.0, 20.0), (100.0, 10.0), 30.0), 2.0)
    distance = 100 * 10 * 2.0 / 220
    assert (cx, cy, angle) == (50.0, 20.0, 30.0)
    assert (w, h) == pytest.approx((100 + 2 * distance, 10 + 2 * distance))


def test_quads_are_ordered_clockwise_from_top_left() -> None:
    rotated = cv2.boxPoints(((50.0, 50.0), (80.0, 20.0), 10.0))[None]
    tl, tr, br, bl = order_quads(rotated)[0]
    assert tl[0] < tr[0] and bl[0] < br[0] and tl[1] < bl[1] and tr[1] < br[1]


def test_reading_order_is_top_to_bottom_then_left_to_right() -> None:
    def quad(x1: float, y1: float, x2: float, y2: float) -> list[list[float]]:
        return [[x1, y1], [x2, y1], [x2, y2], [x1, y2]]

    quads = np.array(
        [
            quad(300, 105, 400, 135),  # line 2, right
            quad(10, 10, 200, 40),  # line 1, left
            quad(20, 100, 250, 130),  # line 2, left (slightly higher)
            quad(220, 12, 400, 42),  # line 1, right
            quad(10, 200, 90, 230),  # line 3
        ],
        np.float32,
    )
    assert reading_order(quads) == [[1, 3], [2, 0], [4]]


def test_letterbox_keeps_the_aspect_and_pads_bottom_right() -> None:
    page = np.full((960, 1280, 3), 200, np.uint8)
    canvas, to_image = letterbox(page, (640, 640))
    assert canvas.shape == (640, 640, 3) and to_image == 2.0
    assert (canvas[:480] == 200).all() and (canvas[480:] == 0).all()
    wide, to_image = letterbox(page, (480, 640))
    assert wide.shape == (480, 640, 3) and to_image == 2.0 and (wide == 200).all()
    small, to_image = letterbox(np.full((100, 50, 3), 9, np.uint8), (640, 640))
    assert to_image == pytest.approx(100 / 640) and (small[:, :320] == 9).all()
    assert (small[:, 320:] == 0).all()  # the padding right of an upscaled tall image
    same = np.full((480, 640, 3), 7, np.uint8)
    canvas, to_image = letterbox(same, (480, 640))
    assert to_image == 1.0 and canvas is same  # the input's own size: no copy


def test_each_page_goes_to_the_smallest_detector_shape_that_holds_it() -> None:
    from distinfer.models.ppocr import DET_SHAPES, det_stage

    assert det_stage(1280, 960) == "det-wide"  # 4:3 -> 480x640
    assert det_stage(1920, 1080) == "det-wide"  # 16:9 -> 360 rows, padded to 480
    assert det_stage(2480, 3508) == "det-tall"  # A4 portrait -> 640x452, padded to 480
    assert det_stage(1000, 800) == "det"  # 640x512 does not fit 480 rows
    assert det_stage(50, 100) == "det-tall"  # small images are scaled up, as before
    for width, height in [(1280, 960), (2480, 3508), (1000, 800), (7, 3)]:
        h, w = DET_SHAPES[det_stage(width, height)]
        scale = 640 / max(width, height)
        assert round(height * scale) <= h and round(width * scale) <= w


def test_a_mixed_batch_calls_each_detector_shape_once_and_keeps_the_order() -> None:
    task = bundled("ppocr-det")
    calls: list[tuple[str, list[tuple[int, ...]]]] = []

    def infer(stage: str, inputs: Any) -> list[list[np.ndarray]]:
        calls.append((stage, [x.shape for x in inputs]))
        h, w = inputs[0].shape[:2]
        prob = np.zeros((1, 1, h, w), np.float32)
        return [[prob.copy()] for _ in inputs]

    pages = [np.zeros(s, np.uint8) for s in [(960, 1280, 3), (1280, 960, 3), (480, 640, 3)]]
    sizes = [(p.shape[1], p.shape[0]) for p in pages]
    predictions = task.predict_many(pages, infer, sizes)
    assert calls == [
        ("det-wide", [(480, 640, 3), (480, 640, 3)]),
        ("det-tall", [(640, 480, 3)]),
    ]
    assert [(p.width, p.height) for p in predictions] == sizes


def test_crop_line_warps_a_quad_to_an_upright_crop_of_fixed_height() -> None:
    image = np.zeros((200, 400, 3), np.uint8)
    image[50:74, 100:340] = 255  # a 240x24 white bar
    quad = np.array([[100, 50], [340, 50], [340, 74], [100, 74]], np.float32)
    crop = crop_line(image, quad, 48)
    assert crop.shape == (48, 480, 3) and crop[4:-4, 4:-4].min() > 200
    vertical = crop_line(image, quad[:, ::-1].copy(), 48)  # a tall quad reads rotated
    assert vertical.shape[0] == 48 and vertical.shape[1] > 48


def test_an_upright_line_cropped_from_its_window_matches_the_warp_of_a_slanted_twin() -> None:
    # Upright quads are resized from their window, others warped: the two must agree.
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 256, (300, 500, 3), np.uint8), (9, 9), 3)
    for top, bottom in ((60, 112), (40, 190)):  # about 1x, and a strong (INTER_AREA) reduction
        quad = np.array([[80, top], [420, top], [420, bottom], [80, bottom]], np.float32)
        slanted = quad + np.array([[0, 0], [0, 1e-3], [0, 1e-3], [0, 0]], np.float32)
        upright, warped = crop_line(image, quad, 48), crop_line(image, slanted, 48)
        assert upright.shape == warped.shape and upright.shape[0] == 48
        assert np.abs(upright.astype(int) - warped.astype(int)).mean() < 3


def test_fit_width_pads_narrow_crops_and_squeezes_wide_ones() -> None:
    crop = np.zeros((48, 100, 3), np.uint8)
    padded = fit_width(crop, 320)
    assert padded.shape == (48, 320, 3) and (padded[:, 100:] == 127).all()
    assert fit_width(np.zeros((48, 400, 3), np.uint8), 320).shape == (48, 320, 3)


def _textured(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    return cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), np.uint8), (5, 5), 2)


def _line_quads() -> np.ndarray:
    """An upright line, a slanted one, a strong reduction, a vertical one, a very wide one."""
    upright = [[20, 30], [220, 30], [220, 80], [20, 80]]
    slanted = [[20, 100], [300, 110], [298, 150], [18, 140]]
    tall = [[40, 160], [200, 160], [200, 290], [40, 290]]
    vertical = [[420, 20], [450, 20], [450, 280], [420, 280]]
    wide = [[5, 292], [1195, 292], [1195, 298], [5, 298]]
    return np.array([upright, slanted, tall, vertical, wide], np.float32)


def test_line_warps_write_each_crop_into_the_array_given() -> None:
    image = _textured(300, 1200)
    quads = _line_quads()
    warps = LineWarps(quads, 48, image.shape)
    crops = crop_lines(image, quads, 48)
    assert warps.widths == [c.shape[1] for c in crops]
    for k, crop in enumerate(crops):
        rows = np.zeros((2, 48, crop.shape[1] + 16, 3), np.uint8)
        written = warps.crop(image, k, rows[1, :, : crop.shape[1]])
        assert np.shares_memory(written, rows)  # written in place, not in a new array
        assert np.array_equal(rows[1, :, : crop.shape[1]], crop)
        assert not rows[0].any() and not rows[1, :, crop.shape[1] :].any()


def test_text_lines_are_the_crops_padded_as_fit_width_pads_them() -> None:
    image = _textured(300, 1200)
    quads = _line_quads()
    warps = LineWarps(quads, 48, image.shape)
    crops = crop_lines(image, quads, 48)
    widths = (320, 640)
    lines = TextLines(warps.widths, widths)
    for k in range(len(warps)):
        warps.crop(image, k, lines.target(k))
    assert max(warps.widths) > widths[-1]  # the last line is squeezed into the widest
    for k, crop in enumerate(crops):
        assert np.array_equal(lines.line(k), crop)
        assert [w.tolist() for w in lines.cls_windows(k)] == [w.tolist() for w in cls_windows(crop)]
    lines.turn(1)
    crops[1] = cv2.rotate(crops[1], cv2.ROTATE_180)
    inputs = lines.inputs()
    assert sorted(inputs) == ["rec320", "rec640"]
    for width, members in lines.members.items():
        expected = [fit_width(crops[i], width) for i in members.tolist()]
        assert [x.tolist() for x in inputs[f"rec{width}"]] == [x.tolist() for x in expected]


def test_a_short_lines_classifier_window_is_padded_when_inputs_are_narrower() -> None:
    crop = _textured(48, 100)
    lines = TextLines([100], (160,))  # rec_widths may be narrower than the classifier's 192
    lines.target(0)[...] = crop
    [window] = lines.cls_windows(0)
    assert np.array_equal(window, fit_width(crop, 192))


# -- real models ----------------------------------------------------------------


def jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    assert ok
    return bytes(data.tobytes())


def levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


@pytest.fixture(scope="module")
def ocr() -> Iterator[Engine]:
    with Engine(bundled("ppocr")) as engine:
        yield engine


@pytest.fixture(scope="module")
def det() -> Iterator[Engine]:
    with Engine(bundled("ppocr-det")) as engine:
        yield engine


@pytest.fixture(scope="module")
def pages() -> list[Page]:
    rng = np.random.default_rng(2024)
    return [render_layout(rng) for _ in range(4)]


def test_top_class_head_decodes_like_the_full_probabilities(pages: list[Page]) -> None:
    task = OCRTask()
    rec = read_model(bundled_models_dir() / REC_FILE)
    full = with_u8_rgb_input(rec, size_hw=(48, 640), mean=[127.5] * 3, scale=[127.5] * 3)
    core = ov.Core()
    plain, top = core.compile_model(full, "CPU"), core.compile_model(with_best_class(full), "CPU")
    page = pages[0]
    x1, y1, x2, y2 = page.boxes[0]
    quad = np.array([[x1, y1 - 8], [x2, y1 - 8], [x2, y2 + 8], [x1, y2 + 8]], np.float32)
    crop = fit_width(crop_line(page.image, quad, 48), 640)[None]
    probs = plain(crop)[plain.outputs[0]]
    confidence, best = (top(crop)[o] for o in top.outputs)
    assert best.shape == confidence.shape == (1, probs.shape[1], 1)
    expected = ctc_greedy_decode(probs, task.alphabet)
    assert expected[0] == page.lines[0]
    assert ctc_decode_best(best, confidence, task.alphabet) == pytest.approx(expected)


def test_bundled_tasks_follow_the_task_protocol() -> None:
    for name in ("ppocr", "ppocr-det", "ppocr-cls"):
        task = bundled(name)
        assert isinstance(task, Task) and task.kind == name
    with pytest.raises(ConfigError, match="ppocr-det"):
        bundled("ppocr-large")


def test_graphs_take_static_u8_rgb_images() -> None:
    graphs = bundled("ppocr").graphs()
    assert sorted(graphs) == [
        "cls",
        "det",
        "det-tall",
        "det-wide",
        "rec1280",
        "rec1920",
        "rec320",
        "rec640",
        "rec960",
    ]
    shapes = {name: g.inputs[0].get_partial_shape() for name, g in graphs.items()}
    assert str(shapes["det"]) == "[1,640,640,3]"
    assert str(shapes["det-wide"]) == "[1,480,640,3]"
    assert str(shapes["det-tall"]) == "[1,640,480,3]"
    assert str(shapes["cls"]) == "[1,48,192,3]"
    assert str(shapes["rec640"]) == "[?,48,640,3]"  # a page's lines of one width together
    assert all(str(g.inputs[0].get_element_type()) == "<Type: 'uint8_t'>" for g in graphs.values())


def test_decode_scale_reduces_for_detection_but_keeps_resolution_for_reading() -> None:
    assert bundled("ppocr-det").decode_scale(1280, 960) == 2
    assert bundled("ppocr-det").decode_scale(640, 480) == 1
    assert bundled("ppocr-det").decode_scale(5200, 3900) == 8
    assert bundled("ppocr").decode_scale(1280, 960) == 1
    assert bundled("ppocr").decode_scale(4000, 3000) == 2


def test_detection_boxes_cover_the_rendered_lines_in_source_pixels(
    det: Engine, pages: list[Page]
) -> None:
    for page in pages:
        prediction = det.predict(jpeg(page.image))  # decoded at half size
        assert (prediction.width, prediction.height) == (1280, 960)
        boxes = [a.box for a in prediction.annotations]
        assert len(boxes) == len(page.boxes)
        # reading order: the n-th detection is the n-th rendered line
        for truth, found in zip(page.boxes, boxes, strict=True):
            assert iou(truth, found) > 0.45
            x1, y1, x2, y2 = truth
            assert found[0] <= x1 + 2 and found[1] <= y1 + 2
            assert found[2] >= x2 - 2 and found[3] >= y2 - 2
        for a in prediction.annotations:
            assert a.label == "text" and a.score > 0.5 and a.text is None
            assert a.polygon is not None and len(a.polygon) == 8


def test_detection_of_a_full_size_array_matches_the_half_size_decode(
    det: Engine, pages: list[Page]
) -> None:
    page = pages[0]
    full = det.predict(page.image)
    half = det.predict(jpeg(page.image))
    assert len(full.annotations) == len(half.annotations)
    for a, b in zip(full.annotations, half.annotations, strict=True):
        assert a.box == pytest.approx(b.box, abs=4)


def test_a_detector_shape_compiles_on_its_first_page(pages: list[Page]) -> None:
    with Engine(bundled("ppocr-det")) as engine:
        assert engine.compiled_stages == ["det-wide"]
        landscape = engine.predict(jpeg(pages[0].image))
        assert engine.compiled_stages == ["det-wide"]
        portrait = engine.predict(jpeg(cv2.rotate(pages[0].image, cv2.ROTATE_90_CLOCKWISE)))
        assert engine.compiled_stages == ["det-tall", "det-wide"]
    assert len(portrait.annotations) == len(landscape.annotations) > 0


def test_the_unpadded_detector_shape_finds_what_the_square_one_finds(
    det: Engine, pages: list[Page], monkeypatch: pytest.MonkeyPatch
) -> None:
    from distinfer.models import _ppocr_det

    data = [jpeg(page.image) for page in pages]
    wide = [det.predict(d) for d in data]  # 4:3 pages: 480x640, no padding
    monkeypatch.setattr(_ppocr_det, "det_stage", lambda width, height: "det")
    square = [det.predict(d) for d in data]  # the same pages padded to 640x640
    # The same lines in the same order; their extents move by a few pixels (the
    # network sees no padding, as with PaddleOCR's own resize; text reads as well,
    # see the accuracy test): centres within 8 source pixels, 4 on the detector input.
    for a, b in zip(wide, square, strict=True):
        assert len(a.annotations) == len(b.annotations) > 0
        for x, y in zip(a.annotations, b.annotations, strict=True):
            assert iou(x.box, y.box) > 0.7
            centre = ((x.box[0] + x.box[2]) / 2, (x.box[1] + x.box[3]) / 2)
            assert centre == pytest.approx(
                ((y.box[0] + y.box[2]) / 2, (y.box[1] + y.box[3]) / 2), abs=8
            )


def test_ocr_reads_generated_pages_with_98_percent_character_accuracy(
    ocr: Engine, tmp_path: Path
) -> None:
    errors = total = 0
    for path, truth in write_pages(tmp_path, 4, seed=7, quality=90):
        prediction = ocr.predict(path.read_bytes())
        assert prediction.text is not None
        errors += levenshtein(prediction.text, truth)
        total += len(truth)
        lines = prediction.text.split("\n")
        assert len(lines) == len(truth.split("\n"))
        assert [a.text for a in prediction.annotations] == lines  # one box per line here
    assert 1 - errors / total >= 0.98


def test_ocr_annotations_carry_text_scores_orientation_and_source_boxes(
    ocr: Engine, pages: list[Page]
) -> None:
    page = pages[1]
    prediction = ocr.predict(jpeg(page.image))
    assert (prediction.width, prediction.height) == (1280, 960)
    for a, truth, line in zip(prediction.annotations, page.boxes, page.lines, strict=True):
        assert a.text == line
        assert a.label == "text" and 0.5 <= a.score <= 1.0
        assert a.class_label == "0" and a.class_score is not None
        assert iou(truth, a.box) > 0.45


def test_a_pages_lines_are_read_in_one_call_per_width_and_batched_requests(
    ocr: Engine, pages: list[Page]
) -> None:
    from distinfer.models.ppocr import REC_BATCH

    calls: list[tuple[str, int]] = []

    def infer(stage: str, inputs: Any) -> list[list[np.ndarray]]:
        calls.append((stage, len(inputs)))
        return ocr.infer(stage, inputs)

    prediction = ocr.task.predict(pages[0].image, infer, (1280, 960))
    rec = [(stage, n) for stage, n in calls if stage.startswith("rec")]
    assert len(rec) == len({stage for stage, _ in rec}) <= 3  # a call per width bucket
    assert sum(n for _, n in rec) == len(prediction.boxes) == len(pages[0].lines)
    assert [stage for stage, _ in calls[:2]] == ["det-wide", "cls"]  # one call each
    assert all(ocr.batch_sizes[stage] == REC_BATCH for stage, _ in rec)


def test_an_upside_down_line_is_turned_by_the_classifier(ocr: Engine, pages: list[Page]) -> None:
    page = pages[2]
    x1, y1, x2, y2 = page.boxes[0]
    region = np.ascontiguousarray(page.image[y1 - 20 : y2 + 20, x1 - 20 : x2 + 20])
    upside_down = np.ascontiguousarray(cv2.rotate(region, cv2.ROTATE_180))
    prediction = ocr.predict(upside_down)
    assert prediction.text == page.lines[0]
    assert prediction.annotations[0].class_label == "180"


def test_orientation_task_tells_upright_from_upside_down(pages: list[Page]) -> None:
    page = pages[3]
    with Engine(bundled("ppocr-cls")) as engine:
        for box in page.boxes:
            quad = np.array(
                [[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]]],
                np.float32,
            )
            crop = crop_line(page.image, quad, 48)
            upright = engine.predict(crop).annotations[0]
            flipped = engine.predict(np.ascontiguousarray(cv2.rotate(crop, cv2.ROTATE_180)))
            assert upright.label == "0" and upright.box == (0, 0, crop.shape[1], crop.shape[0])
            assert flipped.annotations[0].label == "180"


def test_save_and_load_round_trip_reads_the_same_text(
    ocr: Engine, pages: list[Page], tmp_path: Path
) -> None:
    task = bundled("ppocr")
    config = task.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([DET_FILE, CLS_FILE, REC_FILE])
    loaded = OCRTask.load(tmp_path, config)
    assert loaded.save(tmp_path / "again") == config
    with Engine(loaded) as engine:
        assert engine.predict(pages[0].image).text == ocr.predict(pages[0].image).text
    for cls in (TextDetectionTask, TextOrientationTask):
        small = cls()
        assert isinstance(cls.load(tmp_path, small.save(tmp_path)), cls)


def test_missing_model_file_is_a_model_error(tmp_path: Path) -> None:
    for name in (DET_FILE, CLS_FILE):
        (tmp_path / name).write_bytes((bundled_models_dir() / name).read_bytes())
    TextDetectionTask(tmp_path)
    with pytest.raises(ModelError, match=REC_FILE):
        OCRTask(tmp_path)


def test_blank_page_has_no_text(ocr: Engine) -> None:
    prediction = ocr.predict(np.full((480, 640, 3), 240, np.uint8))
    assert prediction.annotations == () and prediction.text == ""


def test_models_can_come_from_a_folder_of_ir_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Air-gapped nodes: $DISTINFER_PPOCR_DIR with the detector as OpenVINO IR."""
    import openvino as ov

    from distinfer.models import ppocr

    det = ov.Core().read_model(ppocr.bundled_models_dir() / ppocr.DET_FILE)
    ov.save_model(det, tmp_path / "PP-OCRv6_det_small.xml")  # FP16-compressed weights
    monkeypatch.setenv(ppocr.MODELS_DIR_ENV, str(tmp_path))
    task = ppocr.bundled("ppocr-det")
    assert task.graphs()["det"].inputs[0].get_partial_shape().to_shape() == [1, 640, 640, 3]
    saved = tmp_path / "saved"
    task.save(saved)
    assert sorted(p.name for p in saved.iterdir()) == [
        "PP-OCRv6_det_small.bin",
        "PP-OCRv6_det_small.xml",
    ]


def test_a_batch_of_pages_detects_like_one_page_at_a_time(det: Engine, pages: list[Page]) -> None:
    data = [jpeg(p.image) for p in pages]
    batch, _ = det.predict_batch(data)
    for one, page in zip(batch, data, strict=True):
        single = det.predict(page)
        assert isinstance(one, Prediction)
        np.testing.assert_allclose(
            [a.box for a in one.annotations], [a.box for a in single.annotations], atol=1e-3
        )


def test_a_batch_of_crops_classifies_like_one_crop_at_a_time() -> None:
    crops = render_crops(np.random.default_rng(5), 4)
    crops[1] = np.ascontiguousarray(crops[1][::-1, ::-1])  # upside down
    with Engine(bundled("ppocr-cls")) as engine:
        batch, _ = engine.predict_batch(crops)
        singles = [engine.predict(c) for c in crops]
    assert [p.annotations[0].label for p in batch] == [p.annotations[0].label for p in singles]  # type: ignore[union-attr]
    assert batch[1].annotations[0].label == "180"  # type: ignore[union-attr]


def test_crops_in_batched_requests_classify_like_crops_one_request_each() -> None:
    crops = render_crops(np.random.default_rng(6), 21)  # two groups of 8, and 5 left over
    for k in range(0, 21, 3):
        crops[k] = np.ascontiguousarray(crops[k][::-1, ::-1])
    with Engine(bundled("ppocr-cls")) as batched, Engine(bundled("ppocr-cls"), batch=1) as single:
        assert batched.batch_sizes == {"cls": 8} and single.batch_sizes == {}
        got, _ = batched.predict_batch(crops)
        want, _ = single.predict_batch(crops)
    labels = [p.annotations[0].label for p in got]  # type: ignore[union-attr]
    assert labels == [p.annotations[0].label for p in want]  # type: ignore[union-attr]
    assert labels.count("180") >= 6
    np.testing.assert_allclose(
        [p.annotations[0].score for p in got],  # type: ignore[union-attr]
        [p.annotations[0].score for p in want],  # type: ignore[union-attr]
        atol=1e-4,
    )
