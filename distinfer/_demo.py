"""Deterministic demo data: document-like pages of printed text with known ground truth.

Pages are drawn with OpenCV's Hershey fonts, so they need no font files and come
out identical on every machine for a given seed. They feed the OCR demo, the
accuracy tests and the benchmarks.

>>> import numpy as np
>>> image, lines = render_page(np.random.default_rng(0))
>>> image.shape, image.dtype, len(lines) > 3
((960, 1280, 3), dtype('uint8'), True)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

logger = logging.getLogger(__name__)

#: Plain, legible Hershey faces (the script and italic faces are left out on purpose).
FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
)

_WORDS_TEXT = (
    "account amount annual apple balance bank basket blue board book border bridge "
    "budget camera carbon center change charge city cloud coffee column comment "
    "company copper cotton credit customer data delivery design desk digital "
    "distance document east energy engine field figure final folder forest garden "
    "green harbor house image index invoice island item journal kitchen label "
    "ladder letter market matter meeting metal model monday morning mountain "
    "network north number office order orange output packet page paper payment "
    "people pepper period photo planet point price print product quarter record "
    "report river road sample school season second service silver simple south "
    "station storage street summer system table target ticket total travel "
    "tuesday value video village water weekly window winter yellow"
)
WORDS = tuple(_WORDS_TEXT.split())


@dataclass(frozen=True)
class Page:
    """A rendered page: RGB ``image``, text ``lines`` in reading order, and their boxes.

    ``boxes`` are ``(x1, y1, x2, y2)`` pixel bounds of each line's ink, one per line.
    """

    image: np.ndarray
    lines: list[str]
    boxes: list[tuple[int, int, int, int]]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def _token(rng: np.random.Generator) -> str:
    kind = rng.random()
    if kind < 0.70:
        word = str(WORDS[rng.integers(len(WORDS))])
        return word.capitalize() if rng.random() < 0.2 else word
    if kind < 0.85:
        return str(int(rng.integers(0, 100_000)))
    if kind < 0.95:
        return f"{rng.integers(0, 1000)}.{rng.integers(0, 100):02d}"
    return f"{rng.integers(1, 29):02d}-{rng.integers(1, 13):02d}-{rng.integers(1990, 2031)}"


def _line_text(
    rng: np.random.Generator, font: int, scale: float, thickness: int, max_width: int
) -> str:
    words: list[str] = []
    target = int(rng.integers(2, 9))
    while len(words) < target:
        candidate = " ".join([*words, _token(rng)])
        if cv2.getTextSize(candidate, font, scale, thickness)[0][0] > max_width:
            break
        words = candidate.split(" ")
    return " ".join(words) if words else _token(rng)[:4]


def render_layout(rng: np.random.Generator, width: int = 1280, height: int = 960) -> Page:
    """Draw a page and return it with its line boxes (see ``render_page``)."""
    if width < 200 or height < 120:
        raise ValueError(f"page must be at least 200x120, got {width}x{height}")
    paper = np.clip(int(rng.integers(228, 256)) - rng.integers(0, 8, size=3), 0, 255)
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = paper.astype(np.uint8)
    lines: list[str] = []
    boxes: list[tuple[int, int, int, int]] = []
    margin = int(width * 0.05)
    y = margin
    while True:
        font = FONTS[int(rng.integers(len(FONTS)))]
        scale = float(rng.uniform(0.8, 1.3))
        thickness = int(rng.integers(1, 3)) + (scale > 1.1)
        (_, cap), baseline = cv2.getTextSize("Ag", font, scale, thickness)
        gap = int(cap * rng.uniform(1.2, 2.2))
        top = y + gap
        if top + cap + baseline + margin > height:
            break
        x = margin + int(rng.integers(0, width // 8))
        text = _line_text(rng, font, scale, thickness, width - margin - x)
        ink = int(rng.integers(0, 60))
        cv2.putText(
            image, text, (x, top + cap), font, scale, (ink, ink, ink), thickness, cv2.LINE_AA
        )
        (text_w, _), _ = cv2.getTextSize(text, font, scale, thickness)
        lines.append(text)
        boxes.append((x, top, x + text_w, top + cap + baseline))
        y = top + cap + baseline
    return Page(image, lines, boxes)


def render_page(
    rng: np.random.Generator, width: int = 1280, height: int = 960
) -> tuple[np.ndarray, list[str]]:
    """A white-ish RGB uint8 page of dark printed lines, and those lines in reading order.

    Lines are left-aligned with a random indent, well separated vertically, and mix
    words, integers, decimals and dates in four Hershey faces of varied size.

    >>> image, lines = render_page(np.random.default_rng(1), width=640, height=480)
    >>> image.shape
    (480, 640, 3)
    """
    page = render_layout(rng, width, height)
    return page.image, page.lines


def render_crops(
    rng: np.random.Generator, n: int, height: int = 48, width: int = 192
) -> list[np.ndarray]:
    """``n`` RGB text-line crops of exactly ``height`` x ``width``, upright.

    >>> [c.shape for c in render_crops(np.random.default_rng(0), 2)]
    [(48, 192, 3), (48, 192, 3)]
    """
    crops = []
    for _ in range(n):
        font = FONTS[int(rng.integers(len(FONTS)))]
        text = " ".join(_token(rng) for _ in range(2))
        scale = 1.0
        (text_w, cap), baseline = cv2.getTextSize(text, font, scale, 2)
        canvas = np.full((cap + baseline + 16, text_w + 16, 3), 245, dtype=np.uint8)
        cv2.putText(canvas, text, (8, 8 + cap), font, scale, (20, 20, 20), 2, cv2.LINE_AA)
        crops.append(cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA))
    return crops


def write_pages(
    folder: str | Path, n: int, seed: int = 0, quality: int = 90
) -> list[tuple[Path, str]]:
    """Write ``n`` JPEG pages into ``folder``; return each path with its expected text.

    The expected text is the page's lines joined by newlines. The same seed gives
    the same files.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     [(p.name, bool(t)) for p, t in write_pages(tmp, 2)]
    [('page_00000.jpg', True), ('page_00001.jpg', True)]
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        image, lines = render_page(rng)
        path = folder / f"page_{i:05d}.jpg"
        ok, data = cv2.imencode(
            ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
        )
        if not ok:
            raise OSError(f"cannot encode {path}")
        path.write_bytes(data.tobytes())
        out.append((path, "\n".join(lines)))
    logger.debug("wrote %d pages to %s", n, folder)
    return out


def write_scroll_video(
    path: str | Path, frames: int = 90, seed: int = 0, size: tuple[int, int] = (640, 480)
) -> Path:
    """A video that scrolls down a tall generated page (a keyframe every 30 frames).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     write_scroll_video(Path(tmp) / "s.mp4", frames=3).name
    's.mp4'
    """
    from .sinks import VideoSink

    width, height = size
    rng = np.random.default_rng(seed)
    page = np.concatenate([render_page(rng, width, height)[0] for _ in range(3)], axis=0)
    travel = page.shape[0] - height
    with VideoSink(path, 10, size, overwrite=True, keyframe_interval=30) as sink:
        for i in range(frames):
            top = round(travel * i / max(frames - 1, 1))
            sink.write(np.ascontiguousarray(page[top : top + height]))
    return Path(path)


def write_demo_inputs(folder: str | Path, pages: int = 24, frames: int = 90) -> Path:
    """The demo's inputs: ``pages/`` of JPEG pages and ``scroll.mp4``; kept if present."""
    folder = Path(folder)
    if len(list((folder / "pages").glob("*.jpg"))) != pages:
        write_pages(folder / "pages", pages)
    if not (folder / "scroll.mp4").exists():
        write_scroll_video(folder / "scroll.mp4", frames)
    return folder
