"""Single-model tasks on real OpenVINO: model_api tasks, the raw task, task_from_model."""

from __future__ import annotations

from pathlib import Path

import _models
import cv2
import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest
from _models import image

from distinfer import ConfigError, ModelError
from distinfer.engine._engine import Engine
from distinfer.models import ModelApiTask, RawTask, task_from_model

RED_RECT = ("red", (50, 20, 150, 60))
BLUE_RECT = ("blue", (10, 70, 30, 90))


def boxes(prediction: object) -> dict[str, tuple[float, ...]]:
    return {a.label: a.box for a in prediction.annotations}  # type: ignore[attr-defined]


@pytest.mark.parametrize("colour", ["red", "green", "blue"])
def test_classifier_labels_the_image_colour_with_a_full_image_box(
    tmp_path: Path, predict, colour: str
) -> None:
    task = ModelApiTask(_models.classifier(tmp_path / "cls.xml"))
    prediction = predict(task, image(50, 40, background=_models.COLOURS[colour]))
    assert task.kind == "classification"
    [annotation] = prediction.annotations
    assert annotation.label == colour
    assert annotation.score > 0.99
    assert annotation.box == (0.0, 0.0, 50.0, 40.0)
    assert (prediction.width, prediction.height) == (50, 40)


def test_labels_given_as_arguments_override_rt_info(tmp_path: Path, predict) -> None:
    path = _models.classifier(tmp_path / "cls.xml")
    task = task_from_model(path, labels=["rouge", "vert", "bleu"])
    assert predict(task, image(8, 8, background=(0, 0, 255))).annotations[0].label == "bleu"


@pytest.mark.parametrize(
    ("builder", "options"),
    [
        (_models.ssd_detector, {}),
        (
            _models.ssd_detector,
            # As Geti exports its detectors: boxes + labels, letterboxed with pad 114.
            {
                "outputs": "boxes_labels",
                "size_wh": (100, 100),
                "resize_type": "fit_to_window_letterbox",
                "pad_value": 114,
            },
        ),
        (_models.yolo_detector, {}),
    ],
    ids=["ssd-detection_out", "ssd-boxes_labels-letterbox", "yolov8-letterbox"],
)
def test_detector_boxes_are_in_source_pixels(
    tmp_path: Path, predict, builder, options: dict[str, object]
) -> None:
    task = ModelApiTask(builder(tmp_path / "det.xml", **options))
    prediction = predict(task, image(200, 100, [RED_RECT, BLUE_RECT]))
    assert task.kind == "detection"
    assert boxes(prediction) == {"red": (50, 20, 150, 60), "blue": (10, 70, 30, 90)}
    assert all(a.score == pytest.approx(1.0) for a in prediction.annotations)


def test_detector_finds_nothing_in_an_empty_image(tmp_path: Path, predict) -> None:
    task = ModelApiTask(_models.ssd_detector(tmp_path / "det.xml"))
    assert predict(task, image(200, 100)).annotations == ()


def test_yolox_uses_its_own_resize_and_scale(tmp_path: Path, predict) -> None:
    # model_api's YOLOX pads right and bottom and divides by meta["scale"]: the fixed
    # model box (8, 8, 24, 24) at scale 64/128 is (16, 16, 48, 48) in the source.
    task = task_from_model(_models.yolox_detector(tmp_path / "yolox.xml"))
    [annotation] = predict(task, image(128, 64)).annotations
    assert (annotation.label, annotation.box) == ("red", (16, 16, 48, 48))
    assert annotation.score == pytest.approx(0.9)


def test_reduced_jpeg_decode_still_reports_source_pixels(tmp_path: Path) -> None:
    task = ModelApiTask(_models.ssd_detector(tmp_path / "det.xml"))
    big = image(1600, 800, [("red", (400, 160, 1200, 480))])
    assert task.decode_scale(1600, 800) == 8  # 200x100 still covers the 100x50 input
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
    assert ok
    with Engine(task, jobs=1) as engine:
        prediction = engine.predict(jpeg.tobytes())
    assert (prediction.width, prediction.height) == (1600, 800)
    assert boxes(prediction) == {"red": (400, 160, 1200, 480)}


def test_segmentation_gives_a_polygon_per_region(tmp_path: Path, predict) -> None:
    task = ModelApiTask(_models.segmenter(tmp_path / "seg.xml"))
    prediction = predict(task, image(200, 100, [RED_RECT, BLUE_RECT]))
    assert task.kind == "segmentation"
    assert boxes(prediction) == {"red": (50, 20, 150, 60), "blue": (10, 70, 30, 90)}
    red = next(a for a in prediction.annotations if a.label == "red")
    # Contour points are boundary pixel centres; collinear points are dropped.
    assert red.polygon == (50, 20, 50, 59, 149, 59, 149, 20)
    assert red.score == pytest.approx(1.0)


def test_segmentation_polygons_scale_to_the_source(tmp_path: Path, predict) -> None:
    task = ModelApiTask(_models.segmenter(tmp_path / "seg.xml"))
    prediction = predict(task, image(200, 100, [RED_RECT]), source_size=(400, 200))
    [red] = prediction.annotations
    assert red.box == (100, 40, 300, 120)
    assert red.polygon == (100, 40, 100, 118, 298, 118, 298, 40)


def test_instance_segmentation_gives_box_and_polygon(tmp_path: Path, predict) -> None:
    task = ModelApiTask(_models.maskrcnn(tmp_path / "inst.xml"))
    prediction = predict(task, image(200, 100, [RED_RECT, BLUE_RECT]))
    assert task.kind == "instance_segmentation"
    assert boxes(prediction) == {"red": (50, 20, 150, 60), "blue": (10, 70, 30, 90)}
    for annotation in prediction.annotations:
        xs, ys = annotation.polygon[0::2], annotation.polygon[1::2]
        x1, y1, x2, y2 = annotation.box
        # model_api pastes the mask into the box, corners rounded by the upsampling.
        assert x1 - 1 <= min(xs) <= x1 + 1 and x2 - 1 <= max(xs) <= x2 + 1
        assert y1 - 1 <= min(ys) <= y1 + 1 and y2 - 1 <= max(ys) <= y2 + 1


@pytest.mark.parametrize(
    ("builder", "kind"),
    [
        (_models.classifier, "classification"),
        (_models.ssd_detector, "detection"),
        (_models.yolo_detector, "detection"),
        (_models.yolox_detector, "detection"),
        (_models.segmenter, "segmentation"),
        (_models.maskrcnn, "instance_segmentation"),
    ],
)
def test_task_from_model_reads_the_kind_from_rt_info(tmp_path: Path, builder, kind: str) -> None:
    task = task_from_model(builder(tmp_path / "m.xml"))
    assert task.kind == kind
    assert [g.inputs[0].get_partial_shape().is_static for g in task.graphs().values()] == [True]


def test_model_api_graph_takes_u8_rgb_at_the_model_size(tmp_path: Path) -> None:
    task = ModelApiTask(_models.ssd_detector(tmp_path / "det.xml", size_wh=(100, 50)))
    [graph] = task.graphs().values()
    assert graph.inputs[0].get_element_type() == ov.Type.u8
    assert list(graph.inputs[0].get_shape()) == [1, 50, 100, 3]
    # The resize is done with OpenCV before the graph, not twice.
    assert "Interpolate" not in {op.get_type_name() for op in graph.get_ops()}


def test_model_saved_by_model_api_with_its_preprocessing_inside(tmp_path: Path, predict) -> None:
    from model_api.models import Model

    wrapper = Model.create_model(str(_models.ssd_detector(tmp_path / "det.xml")), device="CPU")
    wrapper.save(str(tmp_path / "embedded.xml"))  # rt_info embedded_processing=True
    task = ModelApiTask(tmp_path / "embedded.xml")
    [graph] = task.graphs().values()
    assert list(graph.inputs[0].get_shape()) == [1, 50, 100, 3]  # fixed at the model size
    prediction = predict(task, image(200, 100, [RED_RECT, BLUE_RECT]))
    assert boxes(prediction) == {"red": (50, 20, 150, 60), "blue": (10, 70, 30, 90)}


def test_options_reach_model_api(tmp_path: Path, predict) -> None:
    path = _models.ssd_detector(tmp_path / "det.xml")
    task = task_from_model(path, confidence_threshold=1.5)
    assert predict(task, image(200, 100, [RED_RECT])).annotations == ()


def test_unknown_option_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="confidence_treshold"):
        task_from_model(_models.ssd_detector(tmp_path / "d.xml"), confidence_treshold=0.3)


@pytest.mark.parametrize("kind", ["classifier", "detector", "raw"])
def test_predict_many_gives_the_same_with_images_preprocessed_ahead(
    tmp_path: Path, kind: str
) -> None:
    # The engine preprocesses each image as it is decoded (Task.preprocess) and hands
    # the results to predict_many; without them the task preprocesses itself.
    if kind == "raw":
        task = task_from_model(_models.identity_raw(tmp_path / "id.xml"), task="raw")
    elif kind == "classifier":
        task = ModelApiTask(_models.classifier(tmp_path / "cls.xml"))
    else:
        task = ModelApiTask(_models.ssd_detector(tmp_path / "det.xml"))
    pictures = [image(200, 100, [RED_RECT, BLUE_RECT]), image(90, 120, [], background=(0, 0, 255))]
    sizes = [(p.shape[1], p.shape[0]) for p in pictures]
    with Engine(task, jobs=2) as engine:
        plain = task.predict_many(pictures, engine.infer, sizes)
        prepared = [task.preprocess(p) for p in pictures]
        ahead = task.predict_many(pictures, engine.infer, sizes, prepared)
    for a, b in zip(plain, ahead, strict=True):
        assert a.to_dict() == b.to_dict()
        assert a.tensors.keys() == b.tensors.keys()
        for name in a.tensors:
            assert np.array_equal(a.tensors[name], b.tensors[name])
    if kind == "detector":
        assert {x.label for x in ahead[0].annotations} == {"red", "blue"}


# -- raw ---------------------------------------------------------------------------------


def test_raw_returns_the_outputs_by_name(tmp_path: Path, predict) -> None:
    task = task_from_model(_models.identity_raw(tmp_path / "id.xml"), task="raw")
    prediction = predict(task, image(16, 8, background=(10, 20, 30)))
    pixels = prediction.tensors["pixels"]
    assert pixels.shape == (1, 3, 4, 8)  # the model's own output, batch dim included
    assert pixels[0, :, 0, 0].tolist() == [10, 20, 30]
    assert (prediction.width, prediction.height, prediction.annotations) == (16, 8, ())


def test_raw_preprocessing_arguments(tmp_path: Path, predict) -> None:
    task = RawTask(_models.identity_raw(tmp_path / "id.xml"), mean=[10] * 3, scale=[2] * 3)
    pixels = predict(task, image(8, 4, background=(10, 20, 30))).tensors["pixels"]
    assert pixels[0, :, 0, 0].tolist() == [0, 5, 10]
    bgr = RawTask(_models.identity_raw(tmp_path / "id.xml"), color="BGR")
    assert predict(bgr, image(8, 4, background=(10, 20, 30))).tensors["pixels"][
        0, :, 0, 0
    ].tolist() == [30, 20, 10]


def test_raw_reads_preprocessing_from_rt_info(tmp_path: Path, predict) -> None:
    model = ov.Core().read_model(_models.identity_raw(tmp_path / "id.xml"))
    path = _models.save(model, tmp_path / "info.xml", {"mean_values": "10 10 10"})
    task = RawTask(path)
    pixels = predict(task, image(8, 4, background=(10, 20, 30))).tensors["pixels"]
    assert pixels[0, :, 0, 0].tolist() == [0, 10, 20]


def test_raw_dynamic_model_needs_a_size(tmp_path: Path, predict) -> None:
    x = ops.parameter([1, 3, -1, -1], ov.Type.f32, name="x")
    path = tmp_path / "dyn.xml"
    ov.save_model(ov.Model([ops.multiply(x, ops.constant(np.float32(2)))], [x]), path)
    with pytest.raises(ModelError, match="size"):
        RawTask(path)
    task = RawTask(path, size=(6, 2))
    [out] = predict(task, image(12, 4, background=(1, 2, 3))).tensors.values()
    assert out.shape == (1, 3, 2, 6) and out[0, :, 0, 0].tolist() == [2, 4, 6]


def test_raw_decode_scale_keeps_the_model_input_covered(tmp_path: Path) -> None:
    task = RawTask(_models.identity_raw(tmp_path / "id.xml", size_wh=(100, 50)))
    assert task.decode_scale(800, 400) == 8
    assert task.decode_scale(799, 400) == 4
    assert task.decode_scale(150, 400) == 1


# -- errors ------------------------------------------------------------------------------


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        task_from_model(tmp_path / "nope.xml")
    with pytest.raises(ModelError, match="not found"):
        task_from_model(tmp_path / "nope.xml", task="detection")


def test_unsupported_suffix(tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(b"torch")
    with pytest.raises(ModelError, match=r"unsupported model format '\.pt'"):
        task_from_model(tmp_path / "model.pt")


def test_unknown_name_is_neither_file_nor_bundled() -> None:
    with pytest.raises(ModelError, match="ppocr-det"):
        task_from_model("ppocr-typo")


def test_unknown_task_name_lists_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="classification, detection") as info:
        task_from_model(_models.ssd_detector(tmp_path / "d.xml"), task="detektion")
    assert info.value.key == "task"


def test_model_without_model_type_needs_a_task(tmp_path: Path) -> None:
    path = _models.identity_raw(tmp_path / "id.xml")
    with pytest.raises(ModelError, match="give task= one of raw, classification"):
        task_from_model(path)
    assert task_from_model(path, task="raw").kind == "raw"


def test_task_that_contradicts_the_model_type(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"'SSD' .*not classification"):
        task_from_model(_models.ssd_detector(tmp_path / "d.xml"), task="classification")


def test_model_api_tasks_need_ir(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"")
    with pytest.raises(ModelError, match="task='raw'"):
        ModelApiTask(tmp_path / "m.onnx", kind="detection")
