"""Text recognition around the model: line crops in, CTC greedy decoding out.

``crop_line`` warps a detected quad to an upright crop of the recogniser's
height and ``fit_width`` pads it to a static input width. A PaddleOCR
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

import math
from collections.abc import Sequence
from pathlib import Path

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
    quad = quad.astype(np.float32)
    qw = max(float(np.linalg.norm(quad[0] - quad[1])), float(np.linalg.norm(quad[3] - quad[2])))
    qh = max(float(np.linalg.norm(quad[0] - quad[3])), float(np.linalg.norm(quad[1] - quad[2])))
    qw, qh = max(qw, 1.0), max(qh, 1.0)
    vertical = qh >= 1.5 * qw
    if vertical:  # read it as if rotated a quarter turn counter-clockwise
        quad = quad[[1, 2, 3, 0]]
        qw, qh = qh, qw
    out_w = max(1, math.ceil(height * qw / qh))
    if qh > 2 * height:  # strong reduction: warp at full size, then average down
        full = _warp(image, quad, max(1, round(qw)), max(1, round(qh)))
        small: np.ndarray = cv2.resize(full, (out_w, height), interpolation=cv2.INTER_AREA)
        return small
    return _warp(image, quad, out_w, height)


def _warp(image: np.ndarray, quad: np.ndarray, w: int, h: int) -> np.ndarray:
    # The quads are rotated rectangles (DB boxes come from minAreaRect), so the map to
    # an upright crop is affine: warpAffine from three corners, 2.5x cheaper per line
    # than warpPerspective's per-pixel division. Bilinear, not PaddleOCR's bicubic:
    # 4-8x cheaper again, same accuracy on the demo pages.
    target = np.array([[0, 0], [w, 0], [w, h]], np.float32)
    matrix = cv2.getAffineTransform(np.ascontiguousarray(quad[:3]), target)
    out: np.ndarray = cv2.warpAffine(
        image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return out


def fit_width(crop: np.ndarray, width: int, pad: int = PAD) -> np.ndarray:
    """Pad a crop on the right to ``width`` (squeezing it first if it is wider)."""
    h, w = crop.shape[:2]
    if w > width:
        squeezed: np.ndarray = cv2.resize(crop, (width, h), interpolation=cv2.INTER_AREA)
        return squeezed
    out = np.full((h, width, 3), pad, np.uint8)
    out[:, :w] = crop
    return out
