"""The tiny opset models on fixed images: the cases of the columnar equivalence test.

``CASES`` name a task (built from ``_models``), an image and the source size the
prediction is scaled to; ``run_case`` runs one on a real engine. The expected
predictions, ``models/data/per_box_tiny.json``, were written by the per-box code (every
box an ``Annotation``) before predictions became columnar, by ``python
tests/_tiny_cases.py``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _models
import numpy as np
from _models import image

from distinfer import Prediction
from distinfer.engine._engine import Engine
from distinfer.models import ChainTask, ModelApiTask, RawTask, Task

EXPECTED = Path(__file__).parent / "models" / "data" / "per_box_tiny.json"

RED_RECT = ("red", (50, 20, 150, 60))
BLUE_RECT = ("blue", (10, 70, 30, 90))
PICTURE = image(200, 100, [RED_RECT, BLUE_RECT])

Build = Callable[[Path], Task]


def _chain(folder: Path) -> Task:
    detector = ModelApiTask(_models.ssd_detector(folder / "det.xml"), labels=["object"] * 2)
    return ChainTask(detector, ModelApiTask(_models.classifier(folder / "cls.xml")))


#: name -> (task builder, image, source size or None for the image's own)
CASES: dict[str, tuple[Build, np.ndarray, tuple[int, int] | None]] = {
    "classifier-red": (
        lambda d: ModelApiTask(_models.classifier(d / "m.xml")),
        image(50, 40, background=_models.COLOURS["red"]),
        None,
    ),
    "classifier-blue-scaled": (
        lambda d: ModelApiTask(_models.classifier(d / "m.xml")),
        image(50, 40, background=_models.COLOURS["blue"]),
        (75, 61),
    ),
    "ssd-detection_out": (
        lambda d: ModelApiTask(_models.ssd_detector(d / "m.xml")),
        PICTURE,
        None,
    ),
    "ssd-detection_out-scaled": (
        lambda d: ModelApiTask(_models.ssd_detector(d / "m.xml")),
        PICTURE,
        (333, 167),
    ),
    "ssd-boxes_labels-letterbox": (
        lambda d: ModelApiTask(
            _models.ssd_detector(
                d / "m.xml",
                outputs="boxes_labels",
                size_wh=(100, 100),
                resize_type="fit_to_window_letterbox",
                pad_value=114,
            )
        ),
        PICTURE,
        None,
    ),
    "ssd-nothing": (lambda d: ModelApiTask(_models.ssd_detector(d / "m.xml")), image(), None),
    "yolov8": (lambda d: ModelApiTask(_models.yolo_detector(d / "m.xml")), PICTURE, None),
    "yolox": (lambda d: ModelApiTask(_models.yolox_detector(d / "m.xml")), image(128, 64), None),
    "segmentation": (lambda d: ModelApiTask(_models.segmenter(d / "m.xml")), PICTURE, None),
    "segmentation-scaled": (
        lambda d: ModelApiTask(_models.segmenter(d / "m.xml")),
        PICTURE,
        (301, 149),
    ),
    "instance-segmentation": (
        lambda d: ModelApiTask(_models.maskrcnn(d / "m.xml")),
        PICTURE,
        None,
    ),
    "chain": (_chain, PICTURE, None),
    "chain-scaled": (_chain, PICTURE, (400, 200)),
    "raw": (
        lambda d: RawTask(_models.identity_raw(d / "m.xml")),
        image(16, 8, background=(10, 20, 30)),
        None,
    ),
}


def run_case(name: str, folder: Path) -> Prediction:
    build, picture, source_size = CASES[name]
    task = build(folder)
    with Engine(task, jobs=1) as engine:
        size = source_size or (picture.shape[1], picture.shape[0])
        return task.predict(picture, engine.infer, size)


def write_expected() -> None:
    """Write ``EXPECTED`` from the code as it is (run before a change, never after)."""
    found: dict[str, Any] = {}
    for name in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            found[name] = run_case(name, Path(tmp)).to_dict()
    EXPECTED.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    write_expected()
