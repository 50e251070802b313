"""Building real inputs for distributed runs: images on disk, a video, a model, a config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from _models import classifier, image

from distinfer.sinks import VideoSink

COLOUR_NAMES = ("red", "green", "blue")


def colour_of(i: int) -> str:
    return COLOUR_NAMES[(i * 7 + i // 3) % 3]


def write_images(folder: Path, n: int) -> list[Path]:
    """``n`` PNGs in two nested folders; image i is mostly ``colour_of(i)``."""
    paths = []
    for i in range(n):
        path = folder / f"part{i % 2}" / f"img{i:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = image(48 + i % 5, 40, [(colour_of(i), (4, 4, 40, 36))])
        assert cv2.imwrite(str(path), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
        paths.append(path)
    return sorted(paths)


def write_video(path: Path, n: int, fps: float = 10.0) -> Path:
    """A 64x48 video whose frame i is mostly ``colour_of(i)``, a keyframe every 8."""
    with VideoSink(path, fps, (64, 48), keyframe_interval=8) as sink:
        for i in range(n):
            sink.write(image(64, 48, [(colour_of(i), (0, 0, 64, 48))]))
    return path


def job_config(tmp: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """A config dict with the test classifier and a results folder under ``tmp``."""
    model = tmp / "model" / "classifier.xml"
    if not model.exists():
        classifier(model)
    config: dict[str, Any] = {
        "model": {"path": str(model)},
        "input": {},
        "output": {"parquet": str(tmp / "results")},
        "cluster": {"progress": "off", "items_per_unit": 4},
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    return config


def write_job(tmp: Path, **sections: dict[str, Any]) -> Path:
    """``job_config(tmp, **sections)`` written as ``tmp/job.yaml``; its path."""
    path = tmp / "job.yaml"
    path.write_text(yaml.safe_dump(job_config(tmp, **sections)))
    return path


def labels_of(rows: list[dict[str, Any]]) -> list[str | None]:
    return [r["predictions"][0]["label"] if r["predictions"] else None for r in rows]


def rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
