"""Text recognition around the model: line crops in, CTC greedy decoding out.

``LineWarps`` warps detected quads to upright crops of the recogniser's
height and ``fit_width`` pads a crop to a static input width. A PaddleOCR
recogniser outputs, for each of ``T`` horizontal steps, a probability over
``blank + dictionary + space``: index 0 is the CTC blank, the dictionary
characters follow in file order, and a space is the last class
(``model_alphabet`` reads the dictionary from the model's metadata).

>>> alphabet = ctc_alphabet("a\\nb")
>>> alphabet
('', 'a', 'b', ' ')
>>> probs = np.eye(4, dtype=np.float32)[[1, 1, 0, 1, 3, 2]]
>>> ctc_greedy_decode(probs, alphabet)
('aa b', 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import cast

import cv2
import numpy as np
import openvino as ov
import openvino.opset13 as ops

from .._errors import ModelError

#: Index of the CTC blank class.
BLANK = 0
#: u8 padding that normalises to about 0, like PaddleOCR's zero padding after normalising.
PAD = 127


def ctc_alphabet(dictionary: str) -> tuple[str, ...]:
    """Class index to character: blank (``""``), the newline-separated dictionary, space.

    ``dictionary`` is the text PaddleOCR exporters store in the ONNX metadata
    (``character``), one character per line.
    """
    chars = dictionary.splitlines()
    return ("", *chars, " ")


def model_alphabet(model: ov.Model, path: str | Path) -> tuple[str, ...]:
    """The alphabet of a PaddleOCR recogniser from its ``framework/character`` metadata.

    Raises ``ModelError`` when the dictionary is missing or does not match the
    number of output classes.
    """
    try:
        dictionary = model.get_rt_info()["framework"]["character"].value
    except (KeyError, RuntimeError) as exc:
        raise ModelError(f"{path}: no character dictionary in the model metadata") from exc
    alphabet = ctc_alphabet(str(dictionary))
    classes = model.outputs[0].get_partial_shape()[-1]
    if classes.is_static and classes.get_length() != len(alphabet):
        raise ModelError(
            f"{path}: the model has {classes.get_length()} classes but its dictionary "
            f"gives {len(alphabet)} (blank + characters + space)"
        )
    return alphabet


def with_best_class(model: ov.Model) -> ov.Model:
    """Append a top-1 over the classes: the graph then outputs, per step, the best
    class's probability and its index, each ``(1, T, 1)``.

    Greedy CTC only needs those two numbers per step; taking them inside the graph
    saves copying and scanning ``T x 18710`` floats per line on the host (most of
    the host time of recognition before this was added).
    """
    model = model.clone()
    result = model.get_results()[0]
    top = ops.topk(result.input_value(0), 1, -1, "max", "none", index_element_type=ov.Type.i32)
    result.input(0).replace_source_output(top.output(0))
    model.add_results([ops.result(top.output(1))])
    model.validate_nodes_and_infer_types()
    return model


def ctc_decode_best(
    best: np.ndarray, confidence: np.ndarray, alphabet: Sequence[str]
) -> tuple[str, float]:
    """Best-path decode from each step's best class index and its probability.

    Repeated classes collapse, blanks drop out. The confidence is the mean of the
    kept steps' probabilities (0.0 for an empty result), as PaddleOCR does.
    """
    best = best.reshape(-1)
    keep = best != BLANK
    keep[1:] &= best[1:] != best[:-1]
    if not keep.any():
        return "", 0.0
    if int(best.max()) >= len(alphabet):
        raise ValueError(f"class {int(best.max())} is outside the {len(alphabet)}-class alphabet")
    text = "".join([alphabet[i] for i in best[keep].tolist()])
    score = float(confidence.reshape(-1)[keep].mean())
    return text, min(score, 1.0)


def ctc_decode_batch(
    best: np.ndarray, confidence: np.ndarray, alphabet: np.ndarray
) -> tuple[list[str], np.ndarray]:
    """``ctc_decode_best`` of ``N`` lines at once: ``best`` and ``confidence`` are ``(N, T)``.

    ``alphabet`` is ``alphabet_array(...)``. The steps to keep, their count and
    their mean probability are found for every line in one pass; only the join of
    each line's characters into its string is per line. Returns the texts and the
    confidences (float32, 0 for an empty line).

    >>> alphabet = alphabet_array(ctc_alphabet("a\\nb"))
    >>> best = np.array([[1, 1, 0, 2], [0, 0, 0, 0]])
    >>> ctc_decode_batch(best, np.full((2, 4), 0.5, np.float32), alphabet)
    (['ab', ''], array([0.5, 0. ], dtype=float32))
    """
    keep = best != BLANK
    keep[:, 1:] &= best[:, 1:] != best[:, :-1]
    if keep.any() and int(best[keep].max()) >= len(alphabet):
        raise ValueError(
            f"class {int(best[keep].max())} is outside the {len(alphabet)}-class alphabet"
        )
    counts = keep.sum(axis=1)
    kept = np.where(keep, confidence, np.float32(0)).sum(axis=1, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(counts > 0, kept / counts, np.float32(0)).astype(np.float32)
    np.minimum(scores, np.float32(1), out=scores)
    characters = alphabet[best[keep]]
    ends = np.cumsum(counts).tolist()
    texts = ["".join(characters[a:b]) for a, b in zip([0, *ends[:-1]], ends, strict=True)]
    return texts, scores


def alphabet_array(alphabet: Sequence[str]) -> np.ndarray:
    """The alphabet as an array of Python strings, to take many characters at once."""
    array = np.empty(len(alphabet), object)
    array[:] = list(alphabet)
    return array


def ctc_greedy_decode(probs: np.ndarray, alphabet: Sequence[str]) -> tuple[str, float]:
    """Best-path decode of one ``(T, C)`` probability array; returns text and confidence."""
    if probs.ndim == 3 and probs.shape[0] == 1:
        probs = probs[0]
    if probs.ndim != 2:
        raise ValueError(f"expected (T, C) probabilities, got shape {probs.shape}")
    if probs.shape[1] != len(alphabet):
        raise ValueError(
            f"model has {probs.shape[1]} classes but the alphabet {len(alphabet)} characters"
        )
    best = probs.argmax(axis=1)
    return ctc_decode_best(best, np.take_along_axis(probs, best[:, None], 1), alphabet)


def crop_line(image: np.ndarray, quad: np.ndarray, height: int) -> np.ndarray:
    """Warp the text quad (tl, tr, br, bl) to an upright crop ``height`` pixels tall.

    The width keeps the quad's aspect. Steep quads (1.5 times taller than wide)
    are vertical text and come out rotated 90 degrees, as PaddleOCR does.
    """
    return crop_lines(image, np.asarray(quad)[None], height)[0]


def crop_lines(image: np.ndarray, quads: np.ndarray, height: int) -> list[np.ndarray]:
    """``crop_line`` of each of ``quads`` (N, 4, 2), each in an array of its own."""
    warps = LineWarps(quads, height, image.shape[:2])
    return [warps.crop(image, k) for k in range(len(warps))]


class LineWarps:
    """How each of an image's text quads (N, 4, 2) becomes a ``crop_line``: every
    line's geometry in one numpy pass; ``crop`` then runs one OpenCV warp, or a
    resize of its window for an upright line (both without the GIL), and can
    write straight into a caller's array (a row of the recogniser's input).

    The quads are rotated rectangles (DB boxes come from minAreaRect), so the map
    from a crop to the image is affine, fixed by three corners: warpAffine, 2.5x
    cheaper per line than warpPerspective's per-pixel division. Bilinear, not
    PaddleOCR's bicubic: 4-8x cheaper again, the same text on the demo pages.
    (Warping at the line's own size and resizing after was measured too: slower
    on the demo pages, whose lines are about 48 pixels tall already.)
    """

    def __init__(self, quads: np.ndarray, height: int, image_hw: tuple[int, ...]) -> None:
        quads = np.asarray(quads, np.float32).reshape(-1, 4, 2)
        # edge lengths q0q1, q1q2, q2q3, q3q0: the width is the longer of the top and
        # the bottom, the height the longer of the sides
        edges = np.sqrt(((quads - quads[:, [1, 2, 3, 0]]) ** 2).sum(axis=2))
        qw = np.maximum(np.maximum(edges[:, 0], edges[:, 2]), 1).astype(np.float64)
        qh = np.maximum(np.maximum(edges[:, 1], edges[:, 3]), 1).astype(np.float64)
        vertical = qh >= 1.5 * qw  # read it as if rotated a quarter turn counter-clockwise
        quads = np.where(vertical[:, None, None], quads[:, [1, 2, 3, 0]], quads)
        quads = quads.astype(np.float64)
        qw, qh = np.where(vertical, qh, qw), np.where(vertical, qw, qh)
        out_w = np.maximum(1, np.ceil(height * qw / qh)).astype(np.int64)
        # A strong reduction warps at full size, then averages down (INTER_AREA).
        reduce = qh > 2 * height
        warp_w = np.where(reduce, np.maximum(1, np.round(qw)), out_w).astype(np.int64)
        warp_h = np.where(reduce, np.maximum(1, np.round(qh)), height).astype(np.int64)
        # crop pixel (u, v) -> image: q0 + u (q1 - q0) / w + v (q2 - q1) / h
        maps = np.empty((len(quads), 2, 3), np.float64)
        maps[:, :, 0] = (quads[:, 1] - quads[:, 0]) / warp_w[:, None]
        maps[:, :, 1] = (quads[:, 2] - quads[:, 1]) / warp_h[:, None]
        maps[:, :, 2] = quads[:, 0]
        # An upright quad (three lines in four on the demo pages) is a rectangle of the
        # image: its window resized costs 0.6 of the warp (34 against 57 us for a
        # 48x600 line) and reads the same (200 generated pages: 2,176 of 2,178 lines
        # the same text, the other two read right only this way).
        upright = (maps[:, 1, 0] == 0) & (maps[:, 0, 1] == 0)
        upright &= (maps[:, 0, 0] > 0) & (maps[:, 1, 1] > 0)
        self.height = height
        #: Each line's crop width.
        self.widths: list[int] = out_w.tolist()
        self._maps = maps
        self._lines = list(
            zip(
                warp_w.tolist(),
                warp_h.tolist(),
                reduce.tolist(),
                upright.tolist(),
                _windows(quads, image_hw[1], image_hw[0]).tolist(),
                strict=True,
            )
        )

    def __len__(self) -> int:
        return len(self.widths)

    def crop(self, image: np.ndarray, k: int, out: np.ndarray | None = None) -> np.ndarray:
        """Line ``k`` of ``image`` (the image the geometry was made for), written into
        ``out`` when given: a ``height x widths[k] x 3`` u8 array, or a view of one."""
        w, h, small, plain, (x0, y0, x1, y1) = self._lines[k]
        size = (self.widths[k], self.height)
        if plain:
            interpolation = cv2.INTER_AREA if small else cv2.INTER_LINEAR
            crop = cv2.resize(image[y0:y1, x0:x1], size, dst=out, interpolation=interpolation)
        elif small:
            crop = cv2.resize(
                self._warp(image, k, (w, h)), size, dst=out, interpolation=cv2.INTER_AREA
            )
        else:
            crop = self._warp(image, k, (w, h), out)
        return cast(np.ndarray, crop)

    def _warp(
        self, image: np.ndarray, k: int, size: tuple[int, int], out: np.ndarray | None = None
    ) -> np.ndarray:
        return cast(np.ndarray, cv2.warpAffine(
            image, self._maps[k], size, dst=out, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        ))  # fmt: skip


def _windows(quads: np.ndarray, width: int, height: int) -> np.ndarray:
    """Each quad's rectangle from its top-left and bottom-right corners, rounded and
    clipped to the image, at least a pixel: ``N x 4`` integers x0, y0, x1, y1."""
    top_left = np.clip(quads[:, 0].round(), 0, (width - 1, height - 1))
    bottom_right = np.clip(quads[:, 2].round(), top_left + 1, (width, height))
    return np.concatenate([top_left, bottom_right], axis=1).astype(np.int64)


def fit_width(crop: np.ndarray, width: int, pad: int = PAD) -> np.ndarray:
    """Pad a crop on the right to ``width`` (squeezing it first if it is wider)."""
    h, w = crop.shape[:2]
    if w > width:
        squeezed: np.ndarray = cv2.resize(crop, (width, h), interpolation=cv2.INTER_AREA)
        return squeezed
    padded: np.ndarray = cv2.copyMakeBorder(
        crop, 0, 0, 0, width - w, cv2.BORDER_CONSTANT, value=(pad, pad, pad)
    )
    return padded
