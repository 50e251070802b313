"""Deployment folders: distinfer's own (save/load round trip) and the Geti SDK's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import _models
import openvino as ov
import pytest
from _models import image

from distinfer import ConfigError, ModelError, OutputError
from distinfer.models import (
    ChainTask,
    ModelApiTask,
    RawTask,
    load_folder,
    save_folder,
    task_from_model,
)

PICTURE = image(200, 100, [("red", (50, 20, 150, 60)), ("blue", (10, 70, 30, 90))])


def summary(prediction) -> set[tuple[object, ...]]:
    return {(a.label, a.box, a.class_label) for a in prediction.annotations}


# -- distinfer deployment folders ---------------------------------------------------------


def test_detection_round_trips_with_its_options(tmp_path: Path, predict) -> None:
    path = _models.ssd_detector(tmp_path / "src" / "det.xml")
    task = ModelApiTask(path, labels=["rot", "blau"], confidence_threshold=0.4)
    folder = save_folder(task, tmp_path / "saved")
    shutil.rmtree(tmp_path / "src")  # the folder stands on its own

    document = json.loads((folder / "distinfer.json").read_text())
    assert (document["format"], document["version"]) == ("distinfer-deployment", 1)
    assert document["task"]["kind"] == "detection"
    assert {"det.xml", "det.bin", "distinfer.json"} == {p.name for p in folder.iterdir()}

    loaded = load_folder(folder)
    assert isinstance(loaded, ModelApiTask)
    assert (loaded.kind, loaded.labels, loaded.options) == (
        "detection",
        ["rot", "blau"],
        {"confidence_threshold": 0.4},
    )
    assert summary(predict(loaded, PICTURE)) == {
        ("rot", (50, 20, 150, 60), None),
        ("blau", (10, 70, 30, 90), None),
    }


def test_raw_round_trips_with_its_preprocessing(tmp_path: Path, predict) -> None:
    task = RawTask(_models.identity_raw(tmp_path / "id.xml"), mean=[10] * 3, color="BGR")
    loaded = load_folder(save_folder(task, tmp_path / "saved"))
    assert isinstance(loaded, RawTask)
    pixels = predict(loaded, image(8, 4, background=(10, 20, 30))).tensors["pixels"]
    assert pixels[0, :, 0, 0].tolist() == [20, 10, 0]


def test_chain_round_trips(tmp_path: Path, predict) -> None:
    chain = ChainTask(
        ModelApiTask(_models.ssd_detector(tmp_path / "det.xml")),
        ModelApiTask(_models.classifier(tmp_path / "cls.xml")),
    )
    loaded = load_folder(save_folder(chain, tmp_path / "saved"))
    assert isinstance(loaded, ChainTask)
    assert summary(predict(loaded, PICTURE)) == summary(predict(chain, PICTURE))
    assert (tmp_path / "saved" / "detector" / "det.xml").is_file()


def test_task_from_model_accepts_a_deployment_folder(tmp_path: Path) -> None:
    task = ModelApiTask(_models.segmenter(tmp_path / "seg.xml"))
    folder = save_folder(task, tmp_path / "saved")
    assert task_from_model(folder).kind == "segmentation"
    assert task_from_model(str(folder)).kind == "segmentation"


def test_save_folder_refuses_a_folder_with_files(tmp_path: Path) -> None:
    task = RawTask(_models.identity_raw(tmp_path / "id.xml"))
    with pytest.raises(OutputError, match="not an empty folder"):
        save_folder(task, tmp_path)
    (tmp_path / "empty").mkdir()
    assert save_folder(task, tmp_path / "empty") == tmp_path / "empty"


def test_unknown_format_or_kind_is_a_model_error(tmp_path: Path) -> None:
    folder = save_folder(RawTask(_models.identity_raw(tmp_path / "id.xml")), tmp_path / "saved")
    document = json.loads((folder / "distinfer.json").read_text())
    document["task"]["kind"] = "telepathy"
    (folder / "distinfer.json").write_text(json.dumps(document))
    with pytest.raises(ModelError, match="telepathy"):
        load_folder(folder)
    document["version"] = 99
    (folder / "distinfer.json").write_text(json.dumps(document))
    with pytest.raises(ModelError, match="version 99"):
        load_folder(folder)


def test_a_folder_that_is_no_deployment(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not a deployment folder"):
        load_folder(tmp_path)
    with pytest.raises(ModelError, match="not found"):
        load_folder(tmp_path / "missing")


# -- Geti SDK deployment folders ----------------------------------------------------------


def test_geti_single_task_folder(tmp_path: Path, predict) -> None:
    det = _models.ssd_detector(tmp_path / "det.xml")
    root = _models.geti_deployment(
        tmp_path / "geti", [("Detection", "detection", det, ["red", "blue"])]
    )
    for folder in (root, root / "deployment"):  # the parent or the deployment folder itself
        task = load_folder(folder)
        assert task.kind == "detection"
    assert summary(predict(task, PICTURE)) == {
        ("red", (50, 20, 150, 60), None),
        ("blue", (10, 70, 30, 90), None),
    }


def test_geti_detection_to_classification_becomes_a_chain(tmp_path: Path, predict) -> None:
    det = _models.ssd_detector(tmp_path / "det.xml", labels=("red", "blue"))
    cls = _models.classifier(tmp_path / "cls.xml")
    root = _models.geti_deployment(
        tmp_path / "geti",
        [
            ("Detection", "detection", det, ["red", "blue"]),
            ("Classification", "classification", cls, ["red", "green", "blue"]),
        ],
    )
    task = load_folder(root)
    assert isinstance(task, ChainTask)
    assert summary(predict(task, PICTURE)) == {
        ("red", (50, 20, 150, 60), "red"),
        ("blue", (10, 70, 30, 90), "blue"),
    }


def test_geti_labels_come_from_the_project_when_rt_info_has_none(tmp_path: Path, predict) -> None:
    model = ov.Core().read_model(_models.classifier(tmp_path / "cls.xml"))
    unlabelled = ov.Model(model.get_results(), model.get_parameters(), "unlabelled")  # no rt_info
    bare = _models.save(unlabelled, tmp_path / "bare.xml", {"model_type": "Classification"})
    root = _models.geti_deployment(
        tmp_path / "geti", [("Colour", "classification", bare, ["rot", "grün", "blau"])]
    )
    task = load_folder(root)
    label = predict(task, image(8, 8, background=(0, 255, 0))).annotations[0].label
    assert label == "grün"  # the project's labels, its empty label left out


def test_geti_unsupported_task_type(tmp_path: Path) -> None:
    det = _models.ssd_detector(tmp_path / "det.xml")
    root = _models.geti_deployment(tmp_path / "geti", [("Anomaly", "anomaly", det, ["anomalous"])])
    with pytest.raises(ModelError, match="'anomaly' is not supported"):
        load_folder(root)


def test_geti_folder_without_model_files(tmp_path: Path) -> None:
    det = _models.ssd_detector(tmp_path / "det.xml")
    root = _models.geti_deployment(tmp_path / "geti", [("Detection", "detection", det, ["red"])])
    shutil.rmtree(root / "deployment" / "Detection" / "model")
    with pytest.raises(ModelError, match=r"model/model\.xml"):
        load_folder(root)


# -- bundled models --------------------------------------------------------------------


def test_bundled_model_by_name_round_trips(tmp_path: Path) -> None:
    pytest.importorskip("rapidocr")
    task = task_from_model("ppocr-det")
    assert task.kind == "ppocr-det"
    assert load_folder(save_folder(task, tmp_path / "saved")).kind == "ppocr-det"


def test_bundled_model_takes_no_task_or_labels() -> None:
    with pytest.raises(ConfigError, match="takes no task"):
        task_from_model("ppocr-det", task="detection")
