"""The generated demo pages: deterministic, legible layout, files with their ground truth."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from distinfer._demo import render_crops, render_layout, render_page, write_pages


def test_same_seed_gives_the_same_page() -> None:
    a, lines_a = render_page(np.random.default_rng(4))
    b, lines_b = render_page(np.random.default_rng(4))
    c, _ = render_page(np.random.default_rng(5))
    assert np.array_equal(a, b) and lines_a == lines_b
    assert not np.array_equal(a, c)


def test_page_is_rgb_u8_of_the_requested_size_with_dark_text_on_light_paper() -> None:
    image, lines = render_page(np.random.default_rng(0), width=800, height=600)
    assert image.shape == (600, 800, 3) and image.dtype == np.uint8
    assert len(lines) >= 3 and all(line.strip() == line and line for line in lines)
    assert np.median(image) > 200 and image.min() < 80


def test_line_boxes_are_in_reading_order_inside_the_page_and_apart() -> None:
    page = render_layout(np.random.default_rng(1))
    assert len(page.boxes) == len(page.lines)
    for above, below in zip(page.boxes, page.boxes[1:], strict=False):
        assert above[3] + 10 < below[1]  # well separated
    for x1, y1, x2, y2 in page.boxes:
        assert 0 <= x1 < x2 <= 1280 and 0 <= y1 < y2 <= 960
        ink = page.image[y1:y2, x1:x2].min(axis=2)
        assert ink.min() < 100  # the text is inside its box


def test_too_small_page_is_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        render_page(np.random.default_rng(0), width=50, height=50)


def test_write_pages_writes_decodable_jpegs_with_their_text(tmp_path: Path) -> None:
    pages = write_pages(tmp_path / "pages", 3, seed=2)
    again = write_pages(tmp_path / "again", 3, seed=2)
    assert [p.name for p, _ in pages] == ["page_00000.jpg", "page_00001.jpg", "page_00002.jpg"]
    for (path, text), (path_again, text_again) in zip(pages, again, strict=True):
        assert path.read_bytes() == path_again.read_bytes() and text == text_again
        image = cv2.imread(str(path))
        assert image is not None
        assert image.shape == (960, 1280, 3)
        assert "\n" in text


def test_render_crops_are_fixed_size_text_lines() -> None:
    crops = render_crops(np.random.default_rng(0), 3, height=48, width=192)
    assert [c.shape for c in crops] == [(48, 192, 3)] * 3
    assert all(c.dtype == np.uint8 and c.min() < 100 for c in crops)
