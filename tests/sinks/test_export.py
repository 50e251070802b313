"""``distinfer export``: COCO, JSON Lines and CSV of a results folder, streamed, nothing dropped."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import pyarrow as pa
import pytest
from _jobs import job_config, write_video
from _models import image, ssd_detector
from click.testing import CliRunner
from pycocotools.coco import COCO

from distinfer import Annotation, Prediction, RunConfig, read_results, run
from distinfer._main import main
from distinfer.distributed._rows import ResultBatch, error_row, result_row
from distinfer.sinks import ParquetSink, export_results

#: Rows of a hand-made results folder, with every kind of value an export must carry.
OCR_LINE = Annotation(
    "text",
    0.875,
    (10.5, 20.25, 110.5, 40.25),
    polygon=(10.5, 20.25, 110.5, 20.25, 110.5, 40.25, 10.5, 40.25),
    text="Grüße, 世界",
    class_label="180",
    class_score=0.96875,
)


def hand_made_rows() -> list[dict[str, Any]]:
    return [
        result_row(0, "scans/p1.jpg", None, Prediction([OCR_LINE], 640, 480, "Grüße, 世界"), "n0"),
        error_row(
            1, "scans/p2.jpg", None, "truncated JPEG (9 bytes, no end-of-image marker)", "n0"
        ),
        result_row(2, "scans/p3.jpg", None, Prediction([], 640, 480, text=""), "n1"),
        result_row(
            3, "clip.mp4", 0, Prediction([Annotation("car", 0.5, (1, 2, 3, 4))], 64, 48), "n1"
        ),
        result_row(
            4,
            "clip.mp4",
            1,
            Prediction(
                [Annotation("person", 0.25, (0, 0, 8, 16)), Annotation("car", 0.75, (4, 4, 6, 6))],
                64,
                48,
            ),
            "n1",
        ),
    ]


def results_folder(
    folder: Path, rows: Sequence[dict[str, Any]], rows_per_part: int = 2, finished: bool = True
) -> Path:
    sink = ParquetSink(folder, fingerprint="test", rows_per_part=rows_per_part)
    sink.write(ResultBatch.from_rows(rows).records)
    if finished:
        sink.finish(total=len(rows))
    else:
        sink.flush()
    return folder


def export(*args: str) -> Any:
    return CliRunner().invoke(main, ["export", *args])


# -- a real run ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def detected(ray_session: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run of the test SSD detector (red and blue boxes): images with 2, 1 or 0
    boxes, a video of 6 frames (4 red or blue), a broken file: 13 boxes in 16 rows."""
    tmp = tmp_path_factory.mktemp("detected")
    (tmp / "imgs").mkdir()
    for i in range(9):
        rects = [("red", (5, 5, 40, 30)), ("blue", (60, 10, 90, 45))][: 2 - i % 3]
        pixels = image(100, 50, rects)
        bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
        assert cv2.imwrite(str(tmp / "imgs" / f"img{i}.png"), bgr)
    (tmp / "imgs" / "zz-broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    video = write_video(tmp / "clip.mp4", 6)
    detector = ssd_detector(tmp / "model" / "det.xml")
    config = job_config(
        tmp,
        model={"path": str(detector)},
        input={"images": str(tmp / "imgs"), "videos": str(video)},
        output={"rows_per_part": 4},
    )
    summary = run(RunConfig.parse(config))
    assert (summary.total, summary.errors) == (16, 1)
    return tmp / "results"


def test_coco_of_a_real_run_loads_with_pycocotools_and_holds_every_row(
    detected: Path, tmp_path: Path
) -> None:
    rows = read_results(detected).to_pylist()
    result = export(str(detected), "--format", "coco", "-o", str(tmp_path / "coco.json"))
    assert result.exit_code == 0, result.output
    coco = COCO(str(tmp_path / "coco.json"))

    good = [r for r in rows if r["error"] is None]
    assert sorted(coco.getImgIds()) == [r["index"] for r in good]
    assert len(coco.getAnnIds()) == sum(len(r["predictions"]) for r in rows) == 13
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    assert sorted(names.values()) == ["blue", "red"]
    for row in good:
        entry = coco.loadImgs(row["index"])[0]
        assert (entry["width"], entry["height"]) == (row["width"], row["height"])
        anns = coco.loadAnns(coco.getAnnIds(imgIds=row["index"]))
        assert [names[a["category_id"]] for a in anns] == [p["label"] for p in row["predictions"]]
        for ann, p in zip(anns, row["predictions"], strict=True):
            box = [p["x1"], p["y1"], p["x2"] - p["x1"], p["y2"] - p["y1"]]
            assert ann["bbox"] == pytest.approx(box, abs=1e-3)
            assert ann["area"] == pytest.approx(box[2] * box[3], abs=1e-2)
            assert ann["score"] == pytest.approx(p["score"]) and ann["iscrowd"] == 0
    frames = [r for r in good if r["frame"] is not None]
    assert [coco.imgs[r["index"]]["file_name"] for r in frames] == [
        f"{frames[0]['source']}#frame={n}" for n in range(6)
    ]
    assert [coco.imgs[r["index"]]["frame"] for r in frames] == list(range(6))
    [broken] = [r for r in rows if r["error"] is not None]
    assert coco.dataset["errors"] == [{k: broken[k] for k in ("index", "source", "frame", "error")}]
    assert '1 of 16 items failed, listed under "errors"' in result.stderr
    assert f"error: item {broken['index']} {broken['source']}: truncated JPEG" in result.stderr
    assert "exported 16 items (1 failed, 13 detections)" in result.stdout


def test_jsonl_of_a_real_run_is_one_object_per_row_in_index_order(
    detected: Path, tmp_path: Path
) -> None:
    rows = read_results(detected).to_pylist()
    result = export(str(detected), "--format", "jsonl", "-o", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 0, result.output
    objects = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(objects) == len(rows) == 16
    columns = ["index", "source", "frame", "width", "height", "predictions", "text", "error"]
    for obj, row in zip(objects, rows, strict=True):
        assert list(obj) == columns
        assert {k: obj[k] for k in columns if k != "predictions"} == {
            k: row[k] for k in columns if k != "predictions"
        }
        for got, want in zip(obj["predictions"], row["predictions"], strict=True):
            assert got.keys() == want.keys() and got["label"] == want["label"]
            assert [got[k] for k in ("score", "x1", "y1", "x2", "y2")] == pytest.approx(
                [want[k] for k in ("score", "x1", "y1", "x2", "y2")], abs=1e-6
            )


def test_csv_of_a_real_run_has_a_row_per_detection_and_one_per_item_without(
    detected: Path, tmp_path: Path
) -> None:
    rows = read_results(detected).to_pylist()
    result = export(str(detected), "--format", "csv", "-o", str(tmp_path / "out.csv"))
    assert result.exit_code == 0, result.output
    with open(tmp_path / "out.csv", newline="") as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == sum(max(1, len(r["predictions"])) for r in rows) == 19
    assert [int(line["index"]) for line in lines] == [
        r["index"] for r in rows for _ in range(max(1, len(r["predictions"])))
    ]
    by_index: dict[int, list[dict[str, str]]] = {}
    for line in lines:
        by_index.setdefault(int(line["index"]), []).append(line)
    for row in rows:
        got = by_index[row["index"]]
        assert {(g["source"], g["frame"], g["error"]) for g in got} == {
            (row["source"], "" if row["frame"] is None else str(row["frame"]), row["error"] or "")
        }
        if not row["predictions"]:
            assert [(g["label"], g["score"], g["x1"]) for g in got] == [("", "", "")]
            continue
        for g, p in zip(got, row["predictions"], strict=True):
            assert g["label"] == p["label"] and float(g["score"]) == pytest.approx(p["score"])
            assert [float(g[k]) for k in ("x1", "y1", "x2", "y2")] == pytest.approx(
                [p[k] for k in ("x1", "y1", "x2", "y2")]
            )


# -- exact values, from a hand-made folder -------------------------------------------


# pycocotools' mask decoding uses a numpy 1 idiom that numpy 2 warns about
@pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools")
def test_coco_keeps_polygons_ocr_text_orientation_and_video_frames(tmp_path: Path) -> None:
    folder = results_folder(tmp_path / "results", hand_made_rows())
    summary = export_results(folder, "coco", tmp_path / "coco.json", categories=["person"])
    assert (summary.items, summary.errors, summary.detections) == (5, 1, 4)

    coco = COCO(str(tmp_path / "coco.json"))
    assert coco.dataset["categories"] == [
        {"id": 1, "name": "person", "supercategory": ""},
        {"id": 2, "name": "text", "supercategory": ""},
        {"id": 3, "name": "car", "supercategory": ""},
    ]
    assert coco.imgs[0] == {
        "id": 0,
        "file_name": "scans/p1.jpg",
        "width": 640,
        "height": 480,
        "text": "Grüße, 世界",
    }
    assert coco.imgs[4] == {
        "id": 4,
        "file_name": "clip.mp4#frame=1",
        "width": 64,
        "height": 48,
        "frame": 1,
    }
    line = coco.anns[1]
    assert line == {
        "id": 1,
        "image_id": 0,
        "category_id": 2,
        "bbox": [10.5, 20.25, 100.0, 20.0],
        "area": 2000.0,
        "iscrowd": 0,
        "score": 0.875,
        "segmentation": [[10.5, 20.25, 110.5, 20.25, 110.5, 40.25, 10.5, 40.25]],
        "text": "Grüße, 世界",
        "class_label": "180",
        "class_score": 0.96875,
    }
    mask = coco.annToMask(line)  # the polygon is a valid COCO segmentation
    assert mask.shape == (480, 640) and 1800 < mask.sum() < 2200
    assert [a["category_id"] for a in coco.loadAnns(coco.getAnnIds(imgIds=4))] == [1, 3]
    [error] = coco.dataset["errors"]
    assert error["index"] == 1 and error["error"].startswith("truncated JPEG")
    assert coco.dataset["info"]["complete"] is True


def test_jsonl_and_csv_write_the_stored_values_in_their_shortest_form(tmp_path: Path) -> None:
    folder = results_folder(tmp_path / "results", hand_made_rows())
    export_results(folder, "jsonl", tmp_path / "out.jsonl")
    first = json.loads((tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert first == {
        "index": 0,
        "source": "scans/p1.jpg",
        "frame": None,
        "width": 640,
        "height": 480,
        "predictions": [OCR_LINE.to_dict()],
        "text": "Grüße, 世界",
        "error": None,
    }

    export_results(folder, "csv", tmp_path / "out.csv")
    text = (tmp_path / "out.csv").read_text(encoding="utf-8")
    assert text.splitlines() == [
        '"index","source","frame","width","height","label","score","x1","y1","x2","y2",'
        '"text","class_label","class_score","polygon","error"',
        '0,"scans/p1.jpg",,640,480,"text",0.875,10.5,20.25,110.5,40.25,"Grüße, 世界","180",'
        '0.96875,"10.5 20.25 110.5 20.25 110.5 40.25 10.5 40.25",',
        '1,"scans/p2.jpg",,,,,,,,,,,,,,"truncated JPEG (9 bytes, no end-of-image marker)"',
        '2,"scans/p3.jpg",,640,480,,,,,,,,,,,',
        '3,"clip.mp4",0,64,48,"car",0.5,1,2,3,4,,,,,',
        '4,"clip.mp4",1,64,48,"person",0.25,0,0,8,16,,,,,',
        '4,"clip.mp4",1,64,48,"car",0.75,4,4,6,6,,,,,',
    ]


@pytest.mark.parametrize("fmt", ["coco", "jsonl", "csv"])
def test_a_finished_run_without_rows_exports_a_valid_empty_file(tmp_path: Path, fmt: str) -> None:
    folder = tmp_path / "results"
    ParquetSink(folder, fingerprint="test").finish(total=0)
    summary = export_results(folder, fmt, tmp_path / "out")
    assert (summary.items, summary.errors, summary.detections) == (0, 0, 0)
    text = (tmp_path / "out").read_text()
    if fmt == "coco":
        assert json.loads(text)["images"] == [] and len(COCO(str(tmp_path / "out")).imgs) == 0
    elif fmt == "jsonl":
        assert text == ""
    else:
        assert text.startswith('"index","source"') and len(text.splitlines()) == 1


# -- refusals and failures -------------------------------------------------------------


def test_an_unfinished_run_is_refused_unless_partial(tmp_path: Path) -> None:
    folder = results_folder(tmp_path / "results", hand_made_rows()[:3], finished=False)
    out = tmp_path / "out.jsonl"
    refused = export(str(folder), "--format", "jsonl", "-o", str(out))
    assert refused.exit_code == 2
    assert "unfinished run (3 items committed so far)" in refused.stderr
    assert "--partial" in refused.stderr and "Traceback" not in refused.output
    assert not out.exists()

    partial = export(str(folder), "--format", "jsonl", "-o", str(out), "--partial")
    assert partial.exit_code == 0, partial.output
    assert "unfinished run; exported the 3 items committed so far" in partial.stderr
    assert [json.loads(line)["index"] for line in out.read_text().splitlines()] == [0, 1, 2]
    summary = export_results(folder, "coco", tmp_path / "coco.json", partial=True)
    assert (summary.items, summary.finished) == (3, False)
    assert json.loads((tmp_path / "coco.json").read_text())["info"]["complete"] is False


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "does not exist; give the output.parquet folder"),
        (lambda p: p.mkdir(), "has no _manifest.json: not a distinfer results folder"),
        (lambda p: (p.mkdir(), (p / "_manifest.json").write_text("{")), "is unreadable"),
        (lambda p: p.write_text("x"), "is not a folder"),
    ],
)
def test_what_is_not_a_results_folder_is_a_usage_error(
    tmp_path: Path, make: Any, message: str
) -> None:
    make(tmp_path / "results")
    result = export(str(tmp_path / "results"), "--format", "coco", "-o", str(tmp_path / "o.json"))
    assert result.exit_code == 2 and message in result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "o.json").exists()


def test_a_damaged_part_fails_the_export_and_leaves_no_file(tmp_path: Path) -> None:
    folder = results_folder(tmp_path / "results", hand_made_rows())
    (folder / "part-000000000002-000000000003.parquet").write_bytes(b"PAR1 not parquet")
    out = tmp_path / "exports" / "out.json"
    out.parent.mkdir()
    out.write_text("the previous export")
    result = export(str(folder), "--format", "coco", "-o", str(out))
    assert result.exit_code == 1
    assert "part-000000000002-000000000003.parquet" in result.stderr and "damaged" in result.stderr
    assert "Traceback" not in result.output
    assert out.read_text() == "the previous export"  # untouched, and no temporary file left
    assert [p.name for p in out.parent.iterdir()] == ["out.json"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "csv", "-o", "o.csv", "--categories", "a"], "apply to the coco format only"),
        (["--format", "jsonl", "-o", "results/out.jsonl"], "is inside the results folder"),
        (["--format", "jsonl", "-o", "results"], "is a folder; give the path of the file"),
        (["--format", "xml", "-o", "o.xml"], "Invalid value for '--format'"),
    ],
)
def test_bad_usage_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    results_folder(tmp_path / "results", hand_made_rows())
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = export("results", *args)
    assert result.exit_code == 2 and message in result.stderr
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


# -- memory ------------------------------------------------------------------------------

_PEAK = textwrap.dedent(
    """
    import resource, sys
    from distinfer.sinks import export_results
    export_results(sys.argv[1], sys.argv[2], sys.argv[3])
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux
    """
)


def big_results_folder(folder: Path, rows: int) -> Path:
    """``rows`` rows of 4 detections each (polygons and OCR text), written part by part."""
    one = ResultBatch.from_rows(
        [
            result_row(
                i,
                f"pages/{i:07d}.jpg",
                None,
                Prediction([OCR_LINE] * 4, 640, 480, "Grüße, 世界"),
                "n0",
            )
            for i in range(1000)
        ]
    ).records
    sink = ParquetSink(folder, fingerprint="big", rows_per_part=5000)
    for first in range(0, rows, 1000):
        index = pa.array(range(first, first + 1000), pa.int64())
        sink.write(pa.RecordBatch.from_arrays([index, *one.columns[1:]], schema=one.schema))
    sink.finish(total=rows)
    return folder


@pytest.mark.parametrize("fmt", ["coco", "jsonl", "csv"])
def test_memory_does_not_grow_with_the_number_of_rows(tmp_path: Path, fmt: str) -> None:
    peaks = []
    for rows in (10_000, 60_000):
        folder = big_results_folder(tmp_path / f"r{rows}", rows)
        out = tmp_path / f"out{rows}"
        child = subprocess.run(
            [sys.executable, "-c", _PEAK, str(folder), fmt, str(out)],
            capture_output=True,
            text=True,
            check=True,
        )
        peaks.append(int(child.stdout.split()[-1]) / 1024)
        assert out.stat().st_size > rows * 100  # everything was written
    small, large = peaks
    # Holding the rows would cost well over 100 MB more for 50,000 more rows of 4 detections.
    assert large < small + 25, f"peak RSS {small:.0f} MB -> {large:.0f} MB"
