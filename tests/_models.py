"""Tiny OpenVINO models with hand-set weights, so every expected output is known exactly.

Shared by the whole test suite. Each builder writes an IR (``.xml`` + ``.bin``)
with ``rt_info/model_info`` set the way Geti/OTX exports set it, and returns
the path of the ``.xml``. The models look at colours: a pixel is "red" when
R > 128 and G, B < 128 (likewise "green", "blue"), so an image drawn with
``image()`` has known labels, boxes and masks.

>>> from pathlib import Path
>>> import tempfile
>>> path = classifier(Path(tempfile.mkdtemp()) / "cls.xml")
>>> path.suffix
'.xml'
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov
import openvino.opset13 as ops

#: RGB values of the colours the models know.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
}
GREY = (114, 114, 114)

Rect = tuple[int, int, int, int]  # x1, y1, x2, y2 with x2, y2 exclusive


def image(
    width: int = 200,
    height: int = 100,
    rects: Iterable[tuple[str, Rect]] = (),
    background: tuple[int, int, int] = GREY,
) -> np.ndarray:
    """An RGB uint8 image of ``background`` with filled rectangles of named colours.

    >>> image(4, 2, [("red", (0, 0, 2, 1))])[0, 0].tolist()
    [255, 0, 0]
    """
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[:] = background
    for colour, (x1, y1, x2, y2) in rects:
        pixels[y1:y2, x1:x2] = COLOURS[colour]
    return pixels


def save(model: ov.Model, path: str | Path, model_info: Mapping[str, Any]) -> Path:
    """Write ``model`` as IR with ``rt_info/model_info`` (lists become space-separated,
    None values are left out)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for key, value in model_info.items():
        if value is None:
            continue
        if isinstance(value, list | tuple):
            value = " ".join(str(v) for v in value)
        elif isinstance(value, bool):
            value = "True" if value else "False"
        model.set_rt_info(str(value), ["model_info", key])
    ov.save_model(model, path, compress_to_fp16=False)
    return path


def _image_input(size_wh: tuple[int, int]) -> ov.runtime.op.Parameter:
    w, h = size_wh
    param = ops.parameter([1, 3, h, w], ov.Type.f32, name="image")
    param.output(0).get_tensor().set_names({"image"})
    return param


def _mask(image: ov.Node, colour: str) -> ov.Node:
    """[1, H, W] f32: 1 where the pixel has ``colour``, else 0 (input NCHW f32 in 0..255)."""
    parts = []
    for channel, value in enumerate(COLOURS[colour]):
        plane = ops.gather(image, ops.constant(channel), ops.constant(1))  # [1, H, W]
        test = ops.greater if value > 128 else ops.less
        parts.append(test(plane, ops.constant(np.float32(128))))
    both = ops.logical_and(parts[0], parts[1])
    return ops.convert(ops.logical_and(both, parts[2]), ov.Type.f32)


def _extent(mask: ov.Node, reduce_axis: int, length: int) -> tuple[ov.Node, ov.Node]:
    """First index and last index + 1 where ``mask`` (``[1, H, W]``) is set along one axis."""
    hits = ops.reduce_max(mask, ops.constant([0, reduce_axis]), keep_dims=False)  # [length]
    index = ops.constant(np.arange(length, dtype=np.float32))
    present = ops.greater(hits, ops.constant(np.float32(0)))
    first = ops.reduce_min(
        ops.select(present, index, ops.constant(np.float32(length))), ops.constant([0])
    )
    last = ops.reduce_max(
        ops.select(
            present, ops.add(index, ops.constant(np.float32(1))), ops.constant(np.float32(0))
        ),
        ops.constant([0]),
    )
    return first, last  # scalars


def _box(image: ov.Node, colour: str, size_wh: tuple[int, int]) -> tuple[ov.Node, ov.Node]:
    """(score, [x1, y1, x2, y2]) in model pixels of the ``colour`` pixels; score 1 if any."""
    w, h = size_wh
    mask = _mask(image, colour)
    x1, x2 = _extent(mask, 1, w)
    y1, y2 = _extent(mask, 2, h)
    score = ops.reduce_max(mask, ops.constant([0, 1, 2]))
    box = ops.concat([ops.unsqueeze(v, ops.constant(0)) for v in (x1, y1, x2, y2)], 0)
    return score, box  # scalar, [4]


def _named(node: ov.Node, name: str) -> ov.Node:
    node.output(0).get_tensor().set_names({name})
    node.set_friendly_name(name)
    return node


def _geti_info(model_type: str, labels: Sequence[str], **extra: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "model_type": model_type,
        "labels": list(labels),
        "label_ids": [str(i) for i in range(len(labels))],
        "mean_values": [0, 0, 0],
        "scale_values": [1, 1, 1],
        "reverse_input_channels": False,
        "resize_type": "standard",
        "confidence_threshold": 0.5,
    }
    info.update(extra)
    return info


def classifier(
    path: str | Path,
    labels: Sequence[str] = ("red", "green", "blue"),
    *,
    size_wh: tuple[int, int] = (32, 32),
    **model_info: Any,
) -> Path:
    """Mean colour -> logits through a fixed MatMul: a red image gives "red" (score ~1).

    ``labels`` must be colour names; a label's logit is ``10 / 255`` times the mean of
    its colour's channels minus the mean of the others.
    """
    image_in = _image_input(size_wh)
    mean = ops.reduce_mean(image_in, ops.constant([2, 3]), keep_dims=False)  # [1, 3]
    weights = np.zeros((3, len(labels)), np.float32)
    for j, label in enumerate(labels):
        rgb = np.asarray(COLOURS[label], np.float32) / 255.0
        weights[:, j] = np.where(rgb > 0, 10.0 / 255.0, -10.0 / 255.0)
    logits = _named(ops.matmul(mean, ops.constant(weights), False, False), "logits")
    model = ov.Model([logits], [image_in], "classifier")
    return save(model, path, _geti_info("Classification", labels, **model_info))


def ssd_detector(
    path: str | Path,
    labels: Sequence[str] = ("red", "blue"),
    *,
    size_wh: tuple[int, int] = (100, 50),
    outputs: str = "detection_out",
    **model_info: Any,
) -> Path:
    """One box per colour label, in either layout model_api's SSD wrapper parses.

    ``outputs="detection_out"``: one ``[1, 1, N, 7]`` output (image id, label, score,
    normalised box), as OpenVINO's DetectionOutput. ``outputs="boxes_labels"``: ``boxes``
    ``[1, N, 5]`` (model pixels + score) and ``labels`` ``[1, N]``, as OTX 2 / Geti
    export every detector (ATSS, SSD, YOLOX, ...) with ``model_type`` "ssd".
    """
    w, h = size_wh
    image_in = _image_input(size_wh)
    found = [_box(image_in, label, size_wh) for label in labels]
    n = len(labels)
    if outputs == "detection_out":
        norm = ops.constant(np.array([w, h, w, h], np.float32))
        rows = [
            ops.concat(
                [
                    ops.constant(np.array([0, j], np.float32)),
                    ops.unsqueeze(score, ops.constant(0)),
                    ops.divide(box, norm),
                ],
                0,
            )
            for j, (score, box) in enumerate(found)
        ]
        table = ops.reshape(ops.concat(rows, 0), ops.constant([1, 1, n, 7]), False)
        results = [_named(table, "detection_out")]
    elif outputs == "boxes_labels":
        rows = [ops.concat([box, ops.unsqueeze(score, ops.constant(0))], 0) for score, box in found]
        boxes = ops.reshape(ops.concat(rows, 0), ops.constant([1, n, 5]), False)
        classes = ops.constant(np.arange(n, dtype=np.int64).reshape(1, n))
        results = [_named(boxes, "boxes"), _named(classes, "labels")]
    else:
        raise ValueError(f"outputs must be 'detection_out' or 'boxes_labels', got {outputs!r}")
    model = ov.Model(results, [image_in], "ssd")
    return save(model, path, _geti_info("SSD", labels, **model_info))


def yolox_detector(
    path: str | Path,
    labels: Sequence[str] = ("red", "blue"),
    *,
    size_wh: tuple[int, int] = (64, 64),
    **model_info: Any,
) -> Path:
    """Megvii YOLOX layout ``[1, anchors, 5 + C]`` (grid offsets, log sizes, objectness,
    class scores) with one fixed detection whatever the image: anchor 0 (stride 8) says
    class 0 with score 0.9 at model pixels ``(8, 8, 24, 24)``.
    """
    w, h = size_wh
    image_in = _image_input(size_wh)
    anchors = sum((w // s) * (h // s) for s in (8, 16, 32))
    table = np.zeros((1, anchors, 5 + len(labels)), np.float32)
    table[0, 0, :6] = [2.0, 2.0, np.log(2.0), np.log(2.0), 1.0, 0.9]
    # Depend on the input (times zero) so the graph is an ordinary image model.
    zero = ops.multiply(
        ops.reduce_max(image_in, ops.constant([0, 1, 2, 3])), ops.constant(np.float32(0))
    )
    output = _named(ops.add(ops.constant(table), zero), "output")
    model = ov.Model([output], [image_in], "yolox")
    info = _geti_info("YOLOX", labels)
    for key in ("mean_values", "scale_values", "resize_type"):
        info.pop(key)
    info.update(model_info)
    return save(model, path, info)


def yolo_detector(
    path: str | Path,
    labels: Sequence[str] = ("red", "blue"),
    *,
    size_wh: tuple[int, int] = (100, 100),
    **model_info: Any,
) -> Path:
    """YOLOv8 layout ``[1, 4 + C, N]``: one candidate per colour, centre-size in model pixels.

    Preprocessing as Ultralytics exports: letterbox with pad 114, scale 255.
    """
    image_in = _image_input(size_wh)
    # The graph sees 0..1 (scale 255): bring it back to 0..255 for the colour tests.
    pixels = ops.multiply(image_in, ops.constant(np.float32(255)))
    columns = []
    for j, label in enumerate(labels):
        score, box = _box(pixels, label, size_wh)
        x1, y1, x2, y2 = (ops.gather(box, ops.constant(k), ops.constant(0)) for k in range(4))
        centre_size = [
            ops.divide(ops.add(x1, x2), ops.constant(np.float32(2))),
            ops.divide(ops.add(y1, y2), ops.constant(np.float32(2))),
            ops.subtract(x2, x1),
            ops.subtract(y2, y1),
        ]
        scores = [score if k == j else ops.constant(np.float32(0)) for k in range(len(labels))]
        columns.append(
            ops.concat([ops.unsqueeze(v, ops.constant(0)) for v in centre_size + scores], 0)
        )
    table = ops.reshape(
        ops.concat(columns, 0), ops.constant([1, len(labels), 4 + len(labels)]), False
    )
    output = _named(ops.transpose(table, ops.constant([0, 2, 1])), "output0")
    model = ov.Model([output], [image_in], "yolov8")
    info = _geti_info(
        "YOLOv8",
        labels,
        resize_type="fit_to_window_letterbox",
        pad_value=114,
        scale_values=[255, 255, 255],
        confidence_threshold=0.25,
    )
    info.update(model_info)
    return save(model, path, info)


def segmenter(
    path: str | Path,
    labels: Sequence[str] = ("red", "blue"),
    *,
    size_wh: tuple[int, int] = (100, 50),
    **model_info: Any,
) -> Path:
    """Per-pixel scores ``[1, 1 + C, H, W]``: background, then one channel per colour label."""
    image_in = _image_input(size_wh)
    masks = [_mask(image_in, label) for label in labels]
    anything = masks[0]
    for m in masks[1:]:
        anything = ops.maximum(anything, m)
    background = ops.subtract(ops.constant(np.float32(1)), anything)
    scores = ops.concat([ops.unsqueeze(m, ops.constant(1)) for m in [background, *masks]], 1)
    model = ov.Model([_named(scores, "output")], [image_in], "segmenter")
    return save(model, path, _geti_info("Segmentation", labels, **model_info))


def maskrcnn(
    path: str | Path,
    labels: Sequence[str] = ("red", "blue"),
    *,
    size_wh: tuple[int, int] = (100, 50),
    **model_info: Any,
) -> Path:
    """Mask R-CNN layout: boxes ``[1, N, 5]`` (model pixels + score), labels ``[1, N]``,
    masks ``[1, N, 4, 4]`` (all ones: the mask fills its box).

    model_api shifts the class index by one (0 is background), so the rt_info labels
    start with a background name.
    """
    image_in = _image_input(size_wh)
    boxes, classes = [], []
    for j, label in enumerate(labels):
        score, box = _box(image_in, label, size_wh)
        boxes.append(ops.concat([box, ops.unsqueeze(score, ops.constant(0))], 0))
        classes.append(j)
    n = len(labels)
    boxes_out = _named(ops.reshape(ops.concat(boxes, 0), ops.constant([1, n, 5]), False), "boxes")
    labels_out = _named(ops.constant(np.array([classes], np.int64)), "labels")
    masks_out = _named(ops.constant(np.ones((1, n, 4, 4), np.float32)), "masks")
    model = ov.Model([boxes_out, labels_out, masks_out], [image_in], "maskrcnn")
    info = _geti_info("MaskRCNN", ["background", *labels], **model_info)
    return save(model, path, info)


def identity_raw(path: str | Path, *, size_wh: tuple[int, int] = (8, 4)) -> Path:
    """Output ``pixels`` = the NCHW f32 input, so a raw task returns the resized image."""
    image_in = _image_input(size_wh)
    out = _named(ops.multiply(image_in, ops.constant(np.float32(1))), "pixels")
    model = ov.Model([out], [image_in], "identity")
    path = Path(path)
    if path.suffix == ".xml":
        path.parent.mkdir(parents=True, exist_ok=True)
        ov.save_model(model, path, compress_to_fp16=False)
    else:
        raise ValueError(f"identity_raw writes IR: give a .xml path, got {path}")
    return path


#: A Geti label's colour per name (any hex colour does).
_LABEL_COLOURS = {"red": "#ff0000ff", "green": "#00ff00ff", "blue": "#0000ffff"}


def geti_deployment(
    folder: str | Path,
    tasks: Sequence[tuple[str, str, Path, Sequence[str]]],
    project_name: str = "test project",
) -> Path:
    """A folder laid out as the Geti SDK's ``Deployment.save`` writes it.

    ``tasks`` are ``(title, task_type, model_xml, labels)`` in pipeline order; a
    ``crop`` task is put between consecutive trainable tasks, as Geti does, and
    every task gets Geti's empty label. Returns ``folder`` (holding ``deployment/``).
    """
    folder = Path(folder)
    deployment = folder / "deployment"
    pipeline: list[dict[str, Any]] = [{"id": "t0", "title": "Dataset", "task_type": "dataset"}]
    for i, (title, task_type, model_xml, labels) in enumerate(tasks):
        if i:
            pipeline.append({"id": f"c{i}", "title": f"Crop {i}", "task_type": "crop"})
        group = f"{title} labels"
        pipeline.append(
            {
                "id": f"t{i + 1}",
                "title": title,
                "task_type": task_type,
                "labels": [
                    {
                        "id": f"l{i}{j}",
                        "name": name,
                        "color": _LABEL_COLOURS.get(name, "#808080ff"),
                        "group": group,
                        "is_empty": False,
                        "hotkey": "",
                        "parent_id": None,
                    }
                    for j, name in enumerate(labels)
                ]
                + [
                    {
                        "id": f"e{i}",
                        "name": "No object" if task_type == "detection" else f"No {title}",
                        "color": "#000000ff",
                        "group": f"No object {title}",
                        "is_empty": True,
                        "hotkey": "",
                        "parent_id": None,
                    }
                ],
            }
        )
        model_dir = deployment / title / "model"
        model_dir.mkdir(parents=True)
        for suffix in (".xml", ".bin"):
            (model_dir / f"model{suffix}").write_bytes(model_xml.with_suffix(suffix).read_bytes())
        (model_dir / "config.json").write_text(json.dumps({"model_parameters": {}}))
        (deployment / title / "model.json").write_text(
            json.dumps({"name": f"{title} model", "optimization_type": "MO", "precision": ["FP32"]})
        )
        (deployment / title / "hyper_parameters.json").write_text("{}")
    ids = [t["id"] for t in pipeline]
    project = {
        "id": "p0",
        "name": project_name,
        "creation_time": "2026-01-01T00:00:00Z",
        "pipeline": {
            "tasks": pipeline,
            "connections": [{"from": a, "to": b} for a, b in itertools.pairwise(ids)],
        },
    }
    (deployment / "project.json").write_text(json.dumps(project, indent=2))
    return folder
