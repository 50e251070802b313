"""Image bytes to RGB ``uint8`` pixels, with the checks that make bad files one clear error.

Everything here runs once per image on the hot path (tens of images per second per
core), so the pre-decode checks read a few header bytes and never a whole file twice.

- :func:`image_size` reads width and height from a header (JPEG, PNG, BMP, GIF,
  WebP, TIFF) without decoding.
- :func:`decode_image` checks the bytes (empty, not an image, too many pixels,
  truncated JPEG), then decodes to RGB HWC ``uint8``, optionally at 1/2, 1/4 or 1/8
  scale for JPEG, which is far cheaper than decoding at full size and resizing.
- :func:`as_rgb_array` validates arrays handed to the Python API.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable

import cv2
import numpy as np

from distinfer._errors import InputError

__all__ = ["DEFAULT_MAX_IMAGE_PIXELS", "as_rgb_array", "decode_image", "image_format", "image_size"]

logger = logging.getLogger(__name__)

#: Same default as Pillow's decompression-bomb limit (about 179 megapixels).
DEFAULT_MAX_IMAGE_PIXELS = 178_956_970

_MAX_IMAGE_PIXELS_KEY = "input.max_image_pixels"

# JPEG start-of-frame markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC)
# share the range but are not frames.
_JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM, RSTn, SOI, EOI.
_JPEG_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xDA)})
_JPEG_SOS = 0xDA
_JPEG_EOI = b"\xff\xd9"

# cv2.IMREAD_REDUCED_GRAYSCALE_n is the bare "reduce by n" bit; combined with
# IMREAD_COLOR_RGB it decodes a reduced colour image straight into RGB order.
_REDUCED_RGB_FLAGS = {
    1: cv2.IMREAD_COLOR_RGB,
    2: cv2.IMREAD_REDUCED_GRAYSCALE_2 | cv2.IMREAD_COLOR_RGB,
    4: cv2.IMREAD_REDUCED_GRAYSCALE_4 | cv2.IMREAD_COLOR_RGB,
    8: cv2.IMREAD_REDUCED_GRAYSCALE_8 | cv2.IMREAD_COLOR_RGB,
}

# The DIB header sizes BMP files use (core, info, v2..v5), little-endian: "BM" alone is
# too common a start for text to identify a BMP.
_BMP_HEADER_SIZES = frozenset(
    struct.pack("<I", size) for size in (12, 16, 40, 52, 56, 64, 108, 124)
)

# Signatures of common non-image files, to say what a rejected file looks like.
_OTHER_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or DOCX/XLSX)"),
    (b"\x1f\x8b", "a gzip file"),
    (b"BZh", "a bzip2 file"),
    (b"\xfd7zXZ\x00", "an xz file"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"\x1aE\xdf\xa3", "a Matroska/WebM video"),
    (b"\x7fELF", "an executable"),
    (b"PAR1", "a Parquet file"),
)


def image_format(data: bytes) -> str | None:
    """Name the image format from the first bytes: ``"jpeg"``, ``"png"``, ``"gif"``,
    ``"bmp"``, ``"webp"``, ``"tiff"``, ``"pnm"``, ``"jp2"``, ``"avif"``, or ``None``.

    >>> image_format(b"\\x89PNG\\r\\n\\x1a\\n...")
    'png'
    """
    head = data[:16]
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"BM") and data[14:18] in _BMP_HEADER_SIZES:
        return "bmp"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if len(head) >= 3 and head[0:1] == b"P" and head[1:2] in b"123456" and head[2:3].isspace():
        return "pnm"
    if head.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n") or head.startswith(b"\xff\x4f\xff\x51"):
        return "jp2"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return "avif"
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """Read ``(width, height)`` from the image header without decoding pixels.

    Understands JPEG, PNG, GIF, BMP, WebP (lossy, lossless, extended) and TIFF.
    Returns ``None`` for other formats or when the header is damaged.

    >>> import cv2, numpy as np
    >>> ok, buf = cv2.imencode(".png", np.zeros((30, 40, 3), np.uint8))
    >>> image_size(buf.tobytes())
    (40, 30)
    """
    fmt = image_format(data)
    try:
        if fmt == "jpeg":
            frame = _jpeg_frame(data)
            return None if frame is None else (frame[0], frame[1])
        if fmt == "png":
            # IHDR is always the first chunk: width and height at bytes 16..24.
            if data[12:16] != b"IHDR":
                return None
            return _positive(*struct.unpack(">II", data[16:24]))
        if fmt == "gif":
            return _positive(*struct.unpack("<HH", data[6:10]))
        if fmt == "bmp":
            return _bmp_size(data)
        if fmt == "webp":
            return _webp_size(data)
        if fmt == "tiff":
            return _tiff_size(data)
    except struct.error:  # header shorter than it claims
        return None
    return None


def decode_image(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    reduce: Callable[[int, int], int] | None = None,
) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode image bytes to an RGB HWC ``uint8`` C-contiguous array.

    Returns ``(pixels, (source_width, source_height))``; the source size is the full
    size of the image as displayed (after EXIF orientation), even when ``reduce``
    made the decode smaller. Grayscale, RGBA (alpha dropped) and 16-bit images all
    come out as 8-bit RGB.

    ``reduce(width, height)`` may return 1, 2, 4 or 8: a JPEG is then decoded at that
    fraction of its size by libjpeg's DCT scaling, which costs a fraction of a full
    decode. Other formats ignore it.

    Raises :class:`~distinfer.InputError` for empty input, bytes that are not an
    image, images over ``max_pixels`` (checked from the header, before decoding),
    truncated JPEGs, and anything OpenCV cannot decode.

    >>> import cv2, numpy as np
    >>> ok, buf = cv2.imencode(".jpg", np.zeros((64, 96, 3), np.uint8))
    >>> pixels, size = decode_image(buf.tobytes(), reduce=lambda w, h: 2)
    >>> pixels.shape, size
    ((32, 48, 3), (96, 64))
    """
    if len(data) == 0:
        raise InputError("empty file (0 bytes): nothing to decode")
    fmt = image_format(data)
    if fmt is None:
        raise InputError(f"not an image: {_describe_bytes(data)}")

    size: tuple[int, int] | None
    if fmt == "jpeg":
        frame = _jpeg_frame(data)
        size = None if frame is None else (frame[0], frame[1])
        # With no frame header found, the file may end inside its header: no FFD9 at all.
        if not (_jpeg_complete(data, frame[2]) if frame else _JPEG_EOI in data):
            raise InputError(
                f"truncated JPEG ({len(data)} bytes, no end-of-image marker FFD9): "
                "the file was cut short while being copied or written"
            )
    else:
        size = image_size(data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise InputError(
            f"image too large: {size[0]}x{size[1]} = {size[0] * size[1]:,} pixels is over "
            f"the limit of {max_pixels:,}; raise {_MAX_IMAGE_PIXELS_KEY} if the file is "
            "trusted (the limit guards against decompression bombs)"
        )

    factor = 1
    if reduce is not None and fmt == "jpeg" and size is not None:
        factor = reduce(size[0], size[1])
        if factor not in _REDUCED_RGB_FLAGS:
            raise ValueError(f"reduce() must return 1, 2, 4 or 8, got {factor!r}")

    buffer = np.frombuffer(data, dtype=np.uint8)
    try:
        pixels = cv2.imdecode(buffer, _REDUCED_RGB_FLAGS[factor])
    except cv2.error as exc:  # e.g. OpenCV's own pixel limit, corrupt headers
        raise InputError(f"cannot decode {fmt.upper()} image: {_cv2_reason(exc)}") from exc
    if pixels is None:
        raise InputError(
            f"cannot decode {fmt.upper()} image ({len(data)} bytes): the data is corrupt "
            "or uses a variant OpenCV does not support"
        )
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        # IMREAD_COLOR_RGB promises 8-bit 3-channel output; guard against codec plugins.
        raise InputError(f"decoder returned {pixels.dtype} {pixels.shape}, not 8-bit RGB")

    height, width = pixels.shape[:2]
    if size is None:
        size = (width * factor, height * factor)
    elif size[0] != size[1] and (width > height) != (size[0] > size[1]):
        # EXIF orientation rotated the image by 90 degrees while decoding.
        size = (size[1], size[0])
    return np.ascontiguousarray(pixels), size


def as_rgb_array(image: object) -> np.ndarray:
    """Check that ``image`` is an HxWx3 ``uint8`` RGB array and return it C-contiguous.

    An array that is already C-contiguous is returned as is (no copy).

    >>> as_rgb_array(np.zeros((2, 3, 3), np.uint8)).shape
    (2, 3, 3)
    >>> as_rgb_array(np.zeros((2, 3), np.uint8))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    distinfer._errors.InputError: expected an HxWx3 RGB image, got shape (2, 3) ...
    """
    if not isinstance(image, np.ndarray):
        raise InputError(
            f"expected a numpy array (HxWx3 uint8 RGB), got {type(image).__name__}; "
            "convert with np.asarray(image)"
        )
    if image.dtype != np.uint8:
        raise InputError(
            f"expected dtype uint8, got {image.dtype}; convert with .astype(np.uint8) "
            "(after scaling to 0..255) or give uint8 RGB pixels"
        )
    if image.ndim != 3 or image.shape[2] != 3:
        hint = "; for grayscale use np.dstack([img] * 3)" if image.ndim == 2 else ""
        if image.ndim == 3 and image.shape[2] == 4:
            hint = "; drop alpha with image[..., :3]"
        elif image.ndim == 3 and image.shape[0] == 3:
            hint = "; for CHW use image.transpose(1, 2, 0)"
        raise InputError(
            f"expected an HxWx3 RGB image, got shape {tuple(image.shape)} ({image.ndim}-D){hint}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"empty image: shape {tuple(image.shape)} has no pixels")
    return np.ascontiguousarray(image)


def _positive(width: int, height: int) -> tuple[int, int] | None:
    return (width, height) if width > 0 and height > 0 else None


def _jpeg_frame(data: bytes) -> tuple[int, int, int] | None:
    """Walk JPEG segments to the frame header: ``(width, height, offset of first SOS)``.

    Returns None when no frame header precedes the first scan, or the height is
    deferred to a DNL marker (height 0).
    """
    pos = 2
    end = len(data)
    size: tuple[int, int] | None = None
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None  # lost sync: corrupt header
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_STANDALONE_MARKERS:
            pos += 2
            continue
        if marker == _JPEG_SOS:
            return None if size is None else (size[0], size[1], pos)
        length = (data[pos + 2] << 8) | data[pos + 3]
        if length < 2:
            return None
        if marker in _JPEG_SOF_MARKERS and pos + 9 <= end:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            size = _positive(width, height)
            if size is None:
                return None
        pos += 2 + length
    return None


def _jpeg_complete(data: bytes, scan_start: int) -> bool:
    """True when the JPEG has an end-of-image marker after its first scan."""
    # Fast path: EOI at the very end, perhaps followed by zero or whitespace padding.
    if data.rstrip(b"\x00\r\n\t ").endswith(_JPEG_EOI):
        return True
    # Data appended after EOI (camera trailers, motion photos). FFD9 cannot occur
    # inside entropy-coded data (0xFF is stuffed as FF00), so any FFD9 after the
    # first scan is the image's end; starting there skips an EXIF thumbnail's EOI.
    return data.find(_JPEG_EOI, scan_start) != -1


def _bmp_size(data: bytes) -> tuple[int, int] | None:
    (header_size,) = struct.unpack("<I", data[14:18])
    if header_size == 12:  # BITMAPCOREHEADER: 16-bit unsigned dimensions
        return _positive(*struct.unpack("<HH", data[18:22]))
    width, height = struct.unpack("<ii", data[18:26])
    return _positive(width, abs(height))  # negative height = top-down rows


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":  # key frame start code
            return None
        width, height = struct.unpack("<HH", data[26:30])
        return _positive(width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L":
        if data[20] != 0x2F:
            return None
        (bits,) = struct.unpack("<I", data[21:25])
        return ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return (width, height)
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    found: dict[int, int] = {}
    for entry in range(min(count, 512)):
        at = ifd + 2 + 12 * entry
        tag, kind = struct.unpack(order + "HH", data[at : at + 4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG
            fmt = "H" if kind == 3 else "I"
            (found[tag],) = struct.unpack(order + fmt, data[at + 8 : at + 8 + struct.calcsize(fmt)])
            if len(found) == 2:
                return _positive(found[256], found[257])
    return None


def _describe_bytes(data: bytes) -> str:
    """Say what the first bytes of a non-image file look like."""
    head = data[:64]
    for signature, name in _OTHER_SIGNATURES:
        if head.startswith(signature):
            return f"{len(data)} bytes that look like {name}"
    if head[4:8] == b"ftyp":
        return f"{len(data)} bytes that look like an MP4/MOV video; give videos as video inputs"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if stripped.startswith((b"<!doctype html", b"<html", b"<?xml", b"<svg")):
        kind = "an SVG/XML document" if stripped.startswith((b"<?xml", b"<svg")) else "HTML"
        return f"{len(data)} bytes of {kind} (a login or error page saved in place of the image?)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(ch.isprintable() or ch in "\t\r\n" for ch in text):
        return f"{len(data)} bytes whose first bytes look like text: {text[:40]!r}"
    return f"{len(data)} bytes with an unknown signature (first bytes: {head[:8].hex(' ')})"


def _cv2_reason(exc: cv2.error) -> str:
    # OpenCV messages are multi-line with source locations; keep the reason line.
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else "OpenCV error"
