"""Image header parsing, decoding to RGB, and array validation."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from distinfer._errors import InputError
from distinfer.engine._decode import as_rgb_array, decode_image, image_size

WIDTH, HEIGHT = 41, 30


def _bgr_image(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (height, width, 3), dtype=np.uint8)


def _encode(ext: str, image: np.ndarray, params: list[int] | None = None) -> bytes:
    ok, buf = cv2.imencode(ext, image, params or [])
    assert ok
    return buf.tobytes()


def _red_jpeg(width: int = 96, height: int = 64) -> bytes:
    bgr = np.zeros((height, width, 3), np.uint8)
    bgr[..., 2] = 255
    return _encode(".jpg", bgr)


def _png_header_only(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + b"\x00" * 64
    )


def _with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """Insert an APP1 Exif segment holding only an Orientation tag after SOI."""
    tiff = b"MM\x00*" + struct.pack(">I", 8)
    tiff += struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff += struct.pack(">I", 0)
    payload = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + app1 + jpeg[2:]


@pytest.mark.parametrize(
    ("ext", "params"),
    [
        (".jpg", []),
        (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        (".png", []),
        (".bmp", []),
        (".gif", []),
        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80]),  # lossy: VP8
        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]),  # lossless: VP8L
        (".tiff", []),
    ],
)
def test_image_size_reads_width_and_height_from_the_header(ext: str, params: list[int]) -> None:
    data = _encode(ext, _bgr_image(), params)
    assert image_size(data) == (WIDTH, HEIGHT)
    if ext != ".tiff":  # TIFF may keep its directory after the pixels
        # The header alone is enough: the pixel data is not needed.
        assert image_size(data[:1024]) == (WIDTH, HEIGHT)


def test_image_size_reads_extended_webp_with_alpha() -> None:
    bgra = np.dstack([_bgr_image(), np.full((HEIGHT, WIDTH), 128, np.uint8)])
    data = _encode(".webp", bgra, [cv2.IMWRITE_WEBP_QUALITY, 80])
    assert data[12:16] == b"VP8X"
    assert image_size(data) == (WIDTH, HEIGHT)


def test_image_size_reads_top_down_bmp() -> None:
    data = bytearray(_encode(".bmp", _bgr_image()))
    data[22:26] = struct.pack("<i", -HEIGHT)  # negative height: rows stored top-down
    assert image_size(bytes(data)) == (WIDTH, HEIGHT)


@pytest.mark.parametrize("data", [b"", b"hello world", b"\x89PNG\r\n\x1a\n\x00", b"\xff\xd8\xff"])
def test_image_size_is_none_for_unknown_or_cut_headers(data: bytes) -> None:
    assert image_size(data) is None


def test_decode_returns_rgb_in_red_green_blue_order() -> None:
    pixels, size = decode_image(_red_jpeg())
    assert size == (96, 64)
    assert pixels.shape == (64, 96, 3)
    assert pixels.dtype == np.uint8
    assert pixels.flags["C_CONTIGUOUS"]
    red, green, blue = pixels[32, 48].tolist()
    assert red > 240 and green < 15 and blue < 15


def test_decode_of_lossless_formats_is_exact() -> None:
    bgr = _bgr_image()
    for ext in (".png", ".bmp", ".tiff"):
        pixels, _ = decode_image(_encode(ext, bgr))
        np.testing.assert_array_equal(pixels, bgr[..., ::-1])


def test_decode_rejects_empty_input() -> None:
    with pytest.raises(InputError, match=r"empty file \(0 bytes\)"):
        decode_image(b"")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"path,label\nimg/a.jpg,cat\n", "look like text"),
        (b"BMW,Audi,Volkswagen\n", "look like text"),
        (b"<!DOCTYPE html><html><body>403 Forbidden</body></html>", "HTML"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "PDF"),
        (bytes(range(200, 232)), "unknown signature"),
    ],
)
def test_decode_says_what_a_non_image_looks_like(data: bytes, expected: str) -> None:
    with pytest.raises(InputError, match="not an image") as info:
        decode_image(data)
    assert expected in str(info.value)


def test_decode_refuses_too_many_pixels_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    # A header claiming 100000x100000 pixels with no pixel data behind it: the
    # limit must trip on the header, without an attempt to allocate or decode.
    data = _png_header_only(100_000, 100_000)

    def no_decode(*args: object) -> None:
        raise AssertionError("the image was handed to OpenCV to decode")

    monkeypatch.setattr(cv2, "imdecode", no_decode)
    with pytest.raises(InputError) as info:
        decode_image(data)
    message = str(info.value)
    assert "100000x100000" in message
    assert "178,956,970" in message
    assert "input.max_image_pixels" in message


def test_decode_honours_a_custom_pixel_limit() -> None:
    data = _encode(".png", _bgr_image())
    with pytest.raises(InputError, match="41x30"):
        decode_image(data, max_pixels=WIDTH * HEIGHT - 1)
    pixels, _ = decode_image(data, max_pixels=WIDTH * HEIGHT)
    assert pixels.shape == (HEIGHT, WIDTH, 3)


def test_decode_rejects_a_truncated_jpeg() -> None:
    data = _encode(".jpg", _bgr_image(320, 240))
    # OpenCV would return a half-grey image for this without complaint.
    with pytest.raises(InputError, match="truncated JPEG"):
        decode_image(data[: len(data) * 2 // 3])


def test_decode_accepts_padding_and_trailers_after_the_jpeg_end() -> None:
    data = _encode(".jpg", _bgr_image(320, 240))
    reference, _ = decode_image(data)
    for extra in (b"\x00" * 512, b"\r\n", b"ftypmp42" + bytes(range(256)) * 4):
        pixels, size = decode_image(data + extra)
        assert size == (320, 240)
        np.testing.assert_array_equal(pixels, reference)


def test_decode_rejects_corrupt_data_behind_a_valid_signature() -> None:
    with pytest.raises(InputError, match="cannot decode PNG"):
        decode_image(b"\x89PNG\r\n\x1a\n" + b"\x13" * 200)


def test_reduce_decodes_jpeg_at_a_fraction_and_reports_the_source_size() -> None:
    calls: list[tuple[int, int]] = []

    def reduce(width: int, height: int) -> int:
        calls.append((width, height))
        return 4

    pixels, size = decode_image(_red_jpeg(96, 64), reduce=reduce)
    assert calls == [(96, 64)]
    assert pixels.shape == (16, 24, 3)
    assert size == (96, 64)
    assert pixels[8, 12, 0] > 240


def test_reduce_is_ignored_for_formats_without_scaled_decoding() -> None:
    pixels, size = decode_image(_encode(".png", _bgr_image()), reduce=lambda w, h: 2)
    assert pixels.shape == (HEIGHT, WIDTH, 3)
    assert size == (WIDTH, HEIGHT)


def test_reduce_must_return_a_supported_factor() -> None:
    with pytest.raises(ValueError, match="1, 2, 4 or 8"):
        decode_image(_red_jpeg(), reduce=lambda w, h: 3)


def test_exif_rotation_is_applied_and_the_source_size_follows_it() -> None:
    rotated = _with_exif_orientation(_red_jpeg(96, 64), orientation=6)
    pixels, size = decode_image(rotated)
    assert pixels.shape == (96, 64, 3)
    assert size == (64, 96)


def test_grayscale_rgba_and_16_bit_images_become_rgb_u8() -> None:
    gray = np.full((HEIGHT, WIDTH), 77, np.uint8)
    pixels, _ = decode_image(_encode(".png", gray))
    assert pixels.shape == (HEIGHT, WIDTH, 3)
    assert (pixels == 77).all()

    bgra = np.zeros((HEIGHT, WIDTH, 4), np.uint8)
    bgra[..., 0] = 200  # blue
    bgra[..., 3] = 10
    pixels, _ = decode_image(_encode(".png", bgra))
    assert pixels.shape == (HEIGHT, WIDTH, 3)
    assert pixels[0, 0].tolist() == [0, 0, 200]

    deep = np.full((HEIGHT, WIDTH), 0x8123, np.uint16)
    pixels, _ = decode_image(_encode(".png", deep))
    assert pixels.dtype == np.uint8
    assert (pixels == 0x81).all()


def test_as_rgb_array_returns_contiguous_arrays_without_needless_copies() -> None:
    image = np.zeros((4, 5, 3), np.uint8)
    assert as_rgb_array(image) is image
    view = np.zeros((4, 10, 3), np.uint8)[:, ::2]
    view[1, 1] = 9
    result = as_rgb_array(view)
    assert result.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(result, view)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ([[0, 0, 0]], "got list"),
        (np.zeros((4, 5, 3), np.float32), r"got float32.*\.astype\(np\.uint8\)"),
        (np.zeros((4, 5), np.uint8), r"got shape \(4, 5\)"),
        (np.zeros((4, 5, 4), np.uint8), r"shape \(4, 5, 4\).*\[\.\.\., :3\]"),
        (np.zeros((3, 4, 5), np.uint8), r"shape \(3, 4, 5\).*transpose"),
        (np.zeros((0, 5, 3), np.uint8), "empty image"),
    ],
)
def test_as_rgb_array_names_the_problem_and_the_fix(image: object, expected: str) -> None:
    with pytest.raises(InputError, match=expected):
        as_rgb_array(image)
