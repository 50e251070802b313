"""Results as a COCO detection file, written as a stream: memory does not grow with the run.

The layout (one JSON value per line inside each list, so that ``grep`` and
``head`` work on it too)::

    {"info": {...},
     "licenses": [],
     "images": [
    {"id": 0, "file_name": "pages/a.jpg", "width": 1280, "height": 960},
    {"id": 1, "file_name": "clip.mp4#frame=0", "width": 64, "height": 48, "frame": 0},
    ...],
     "annotations": [
    {"id": 1, "image_id": 0, "category_id": 1, "bbox": [x, y, w, h], "area": ...,
     "iscrowd": 0, "score": 0.98, "segmentation": [[x0, y0, x1, y1, ...]], "text": "..."},
    ...],
     "categories": [{"id": 1, "name": "text", "supercategory": ""}, ...],
     "errors": [{"index": 7, "source": "pages/b.jpg", "frame": null, "error": "..."}, ...]}

- An image's ``id`` is the row's ``index``; a video frame's ``file_name`` is
  ``source#frame=N`` (a media-fragment style name, unique per frame) and it
  carries ``frame``. OCR images carry their ``text`` (lines joined by ``\\n``).
- Categories are numbered from 1 in the order given, then in the order labels
  first appear (in index order): the same results always give the same ids.
- ``bbox`` is ``[x1, y1, x2 - x1, y2 - y1]``; ``area`` is the polygon's area
  when the row has a polygon of 3 points or more (then also ``segmentation``),
  else the box's; both rounded to 1/1000 pixel. ``text``, ``class_label`` and
  ``class_score`` are kept when set.
- Failed items have no image entry (their size is unknown and they have no
  predictions); they are listed under ``errors``, never dropped.

Images go straight to the output; annotations and errors to temporary files
beside it, appended once every row has been seen; only the categories are
held in memory.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import pyarrow as pa

from ._reader import decimal_floats

#: The result columns a COCO file is made of.
COCO_COLUMNS = ("index", "source", "frame", "width", "height", "predictions", "text", "error")


class _Categories:
    """Label -> category id, from 1: the labels given first, then as labels first appear."""

    def __init__(self, names: Sequence[str]) -> None:
        self.ids: dict[str, int] = {}
        for name in names:
            self.id(name)

    def id(self, name: str) -> int:
        found = self.ids.get(name)
        if found is None:
            found = self.ids[name] = len(self.ids) + 1
        return found


def write_coco(
    batches: Iterable[pa.RecordBatch],
    out: IO[bytes],
    *,
    categories: Sequence[str] = (),
    info: Mapping[str, Any] | None = None,
    scratch_dir: str | Path | None = None,
) -> None:
    """Write result rows (``COCO_COLUMNS``, in index order) to ``out`` as one COCO file.

    ``scratch_dir`` holds the temporary files of annotations and errors (None:
    the system's); give a folder on the output's disk, which has room for the
    output anyway.
    """
    labels = _Categories(categories)
    next_id = 1
    with (
        tempfile.TemporaryFile(dir=scratch_dir) as annotations,
        tempfile.TemporaryFile(dir=scratch_dir) as errors,
    ):
        out.write(b'{"info": ' + _dumps(dict(info or {})) + b',\n "licenses": [],\n "images": [')
        lists = {out: "", annotations: "", errors: ""}  # separator before the next entry

        def add(target: IO[bytes], entry: Mapping[str, Any]) -> None:
            target.write(lists[target].encode() + b"\n" + _dumps(entry))
            lists[target] = ","

        for batch in batches:
            for row in decimal_floats(batch.select(COCO_COLUMNS)).to_pylist():
                if row["error"]:
                    add(errors, _error(row))
                    continue
                add(out, _image(row))
                for prediction in row["predictions"]:
                    add(annotations, _annotation(prediction, next_id, row["index"], labels))
                    next_id += 1
        out.write(b'],\n "annotations": [')
        annotations.seek(0)
        shutil.copyfileobj(annotations, out)
        out.write(b'],\n "categories": [')
        for k, (name, number) in enumerate(labels.ids.items()):
            entry = {"id": number, "name": name, "supercategory": ""}
            out.write(b"," * (k > 0) + b"\n" + _dumps(entry))
        out.write(b'],\n "errors": [')
        errors.seek(0)
        shutil.copyfileobj(errors, out)
        out.write(b"]}\n")


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=False).encode()


def _image(row: Mapping[str, Any]) -> dict[str, Any]:
    frame = row["frame"]
    image: dict[str, Any] = {
        "id": row["index"],
        "file_name": row["source"] if frame is None else f"{row['source']}#frame={frame}",
        "width": row["width"],
        "height": row["height"],
    }
    if frame is not None:
        image["frame"] = frame
    if row["text"] is not None:
        image["text"] = row["text"]
    return image


def _annotation(
    prediction: Mapping[str, Any], number: int, image_id: int, labels: _Categories
) -> dict[str, Any]:
    x1, y1, x2, y2 = (prediction[k] for k in ("x1", "y1", "x2", "y2"))
    w, h = x2 - x1, y2 - y1
    polygon = prediction["polygon"]
    outline = polygon is not None and len(polygon) >= 6
    area = polygon_area(polygon) if outline else w * h
    annotation: dict[str, Any] = {
        "id": number,
        "image_id": image_id,
        "category_id": labels.id(prediction["label"]),
        "bbox": [x1, y1, round(w, 3), round(h, 3)],
        "area": round(area, 3),
        "iscrowd": 0,
        "score": prediction["score"],
    }
    if outline:
        annotation["segmentation"] = [polygon]
    for key in ("text", "class_label", "class_score"):
        if prediction[key] is not None:
            annotation[key] = prediction[key]
    return annotation


def _error(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("index", "source", "frame", "error")}


def polygon_area(flat: Sequence[float]) -> float:
    """Area of a simple polygon given as ``x0, y0, x1, y1, ...`` (the shoelace formula).

    >>> polygon_area([0, 0, 4, 0, 4, 3, 0, 3])
    12.0
    """
    xs, ys = flat[0::2], flat[1::2]
    n = len(xs)
    twice = sum(xs[i] * ys[(i + 1) % n] - xs[(i + 1) % n] * ys[i] for i in range(n))
    return abs(twice) / 2.0
