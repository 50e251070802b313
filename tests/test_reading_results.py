"""docs/results.md runs: its Python and ``distinfer export`` snippets, on a real results folder.

The snippets run in document order, in one namespace, in a folder where
``out/results`` is a real run of the test detector; after each section the
test checks the values its snippets computed.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest
from _jobs import job_config
from _models import image, ssd_detector
from click.testing import CliRunner

from distinfer import RunConfig, run
from distinfer._main import main
from distinfer.sinks._export import CSV_COLUMNS, EXPORT_COLUMNS

DOC = Path(__file__).resolve().parents[1] / "docs" / "results.md"
README = Path(__file__).resolve().parents[1] / "README.md"
NOT_RUN = "<!-- not run by tests/test_reading_results.py"
RED, BLUE = (5, 5, 40, 30), (60, 10, 90, 45)


def snippets(text: str) -> Iterator[tuple[str, str, str]]:
    """``(section, language, code)`` of each fenced block, unless marked as not run."""
    section = ""
    lines = iter(text.splitlines())
    previous = ""
    for line in lines:
        if line.startswith("#"):
            section = line.lstrip("#").strip()
        elif line.startswith("```"):
            language = line[3:].strip()
            code = []
            for inner in lines:
                if inner.startswith("```"):
                    break
                code.append(inner)
            if not previous.startswith(NOT_RUN):
                yield section, language, "\n".join(code)
        previous = line


@pytest.fixture
def results(ray_session: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``out/results`` of a run of the test detector (red and blue boxes) on 9 images (2, 1
    or 0 boxes each) and a broken file, and ``ground_truth.json`` of those boxes."""
    (tmp_path / "imgs").mkdir()
    truth: dict[str, Any] = {
        "images": [],
        "annotations": [],
        "categories": [{"id": 7, "name": "red"}, {"id": 9, "name": "blue"}],
    }
    for i in range(9):
        path = tmp_path / "imgs" / f"img{i}.png"
        rects = [("red", RED), ("blue", BLUE)][: 2 - i % 3]
        pixels = cv2.cvtColor(image(100, 50, rects), cv2.COLOR_RGB2BGR)
        assert cv2.imwrite(str(path), pixels)
        truth["images"].append({"id": 100 + i, "file_name": str(path), "width": 100, "height": 50})
        for name, (x1, y1, x2, y2) in rects:
            truth["annotations"].append(
                {
                    "id": len(truth["annotations"]) + 1,
                    "image_id": 100 + i,
                    "category_id": 7 if name == "red" else 9,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    (tmp_path / "imgs" / "zz-broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (tmp_path / "ground_truth.json").write_text(json.dumps(truth))
    config = job_config(
        tmp_path,
        model={"path": str(ssd_detector(tmp_path / "model" / "det.xml"))},
        input={"images": str(tmp_path / "imgs")},
        output={"parquet": str(tmp_path / "out" / "results")},
    )
    assert run(RunConfig.parse(config)).errors == 1
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_snippets_of_docs_results_run_and_agree(results: Path) -> None:
    namespace: dict[str, Any] = {}
    checked = set()
    for section, language, code in snippets(DOC.read_text(encoding="utf-8")):
        if language == "python":
            exec(compile(code, f"{DOC.name} ({section})", "exec"), namespace)
        elif language == "console":
            for line in code.splitlines():
                args = shlex.split(line)
                assert args[:2] == ["distinfer", "export"], line
                result = CliRunner().invoke(main, args[1:])
                assert result.exit_code == 0, result.output
        else:
            continue
        check = CHECKS.get(section)
        if check is not None:
            check(namespace, results)
            checked.add(section)
    assert checked == set(CHECKS)  # every section with snippets ran


def _distinfer(ns: dict[str, Any], folder: Path) -> None:
    assert len(ns["rows"]) == 10
    broken = str(folder / "imgs" / "zz-broken.jpg")
    assert [source for source, _ in ns["failed"]] == [broken]
    assert ns["failed"][0][1].startswith("truncated JPEG")
    assert ns["labels"] == ["red", "blue"]  # img0: both colours
    if "detections" in ns:
        assert ns["detections"] == 9


def _pandas(ns: dict[str, Any], folder: Path) -> None:
    boxes = ns["boxes"]
    assert len(boxes) == 9 and len(ns["failed"]) == 1
    assert list(boxes.columns[:4]) == ["index", "source", "label", "score"]
    assert boxes[["x1", "y1", "x2", "y2"]].values.tolist()[:2] == [list(RED), list(BLUE)]
    assert ns["per_label"].loc["red", "count"] == 6 and ns["per_label"].loc["blue", "count"] == 3
    ns["pandas_boxes"] = boxes[["index", "label", "x1", "y1", "x2", "y2"]].values.tolist()


def _polars(ns: dict[str, Any], folder: Path) -> None:
    boxes = ns["boxes"]
    assert ns["failed"].height == 1
    assert boxes.select("index", "label", "x1", "y1", "x2", "y2").rows() == [
        tuple(row) for row in ns["pandas_boxes"]
    ]
    assert ns["per_label"].rows() == [("blue", 3, 1.0), ("red", 6, 1.0)]


def _duckdb(ns: dict[str, Any], folder: Path) -> None:
    boxes = ns["boxes"]
    assert len(ns["failed"]) == 1
    assert boxes[["index", "label", "x1", "y1", "x2", "y2"]].values.tolist() == ns["pandas_boxes"]
    assert ns["per_label"].values.tolist() == [["blue", 3, 1.0], ["red", 6, 1.0]]


def _exports(ns: dict[str, Any], folder: Path) -> None:
    coco = json.loads((folder / "out" / "coco.json").read_text())
    assert (len(coco["images"]), len(coco["annotations"]), len(coco["errors"])) == (9, 9, 1)
    assert len((folder / "out" / "results.jsonl").read_text().splitlines()) == 10
    assert len((folder / "out" / "detections.csv").read_text().splitlines()) == 1 + 9 + 3 + 1


def _coco(ns: dict[str, Any], folder: Path) -> None:
    assert ns["evaluation"].stats[0] == pytest.approx(1.0)  # every box found, exactly


CHECKS = {
    "Reading with distinfer": _distinfer,
    "pandas": _pandas,
    "Polars": _polars,
    "DuckDB": _duckdb,
    "Exports: COCO, JSON Lines, CSV": _exports,
    "COCO": _coco,
}


def test_the_sample_outputs_in_docs_results_have_the_exported_layout() -> None:
    text = DOC.read_text(encoding="utf-8")
    blocks = {(section, language): code for section, language, code in snippets(text)}
    header = blocks[("CSV", "")].splitlines()[0]
    assert header == ",".join(f'"{name}"' for name in CSV_COLUMNS)
    line = json.loads(blocks[("JSON Lines", "json")])
    assert list(line) == list(EXPORT_COLUMNS)
    coco = blocks[("COCO", "json")]
    keys = ["info", "licenses", "images", "annotations", "categories", "errors"]
    assert list(json.loads(coco)) == keys
    assert not re.search(r"/(tmp|home|work|Users)/", text)  # no machine paths


def test_the_readme_snippet_reads_one_row_per_box_three_ways(results: Path) -> None:
    (section, code), *_ = (
        (s, c)
        for s, language, c in snippets(README.read_text(encoding="utf-8"))
        if language == "python" and "read_results" in c
    )
    namespace: dict[str, Any] = {}
    exec(compile(code, f"README.md ({section})", "exec"), namespace)
    assert len(namespace["df"]) == 10
    for boxes in (namespace["boxes"], namespace["pl_boxes"].to_pandas(), namespace["db_boxes"]):
        assert len(boxes) == 9
        assert sorted(set(boxes["label"])) == ["blue", "red"]
