"""Detection -> classification chains: each box's crop classified, one infer call per stage
for all the images of a call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import _models
import numpy as np
import pytest
from _models import image

from distinfer import ModelError
from distinfer.engine._engine import Engine
from distinfer.models import ChainTask, ModelApiTask, RawTask, infer_all
from distinfer.models._chain import DETECTOR_PREFIX, _Prefixed


@pytest.fixture
def chain(tmp_path: Path) -> ChainTask:
    # The detector calls every object "object"; the classifier tells the colours apart.
    detector = ModelApiTask(_models.ssd_detector(tmp_path / "det.xml"), labels=["object"] * 2)
    classifier = ModelApiTask(_models.classifier(tmp_path / "cls.xml"))
    return ChainTask(detector, classifier)


def test_each_box_gets_the_class_of_its_crop(chain: ChainTask, predict) -> None:
    picture = image(200, 100, [("red", (50, 20, 150, 60)), ("blue", (10, 70, 30, 90))])
    prediction = predict(chain, picture)
    found = {(a.box, a.label, a.class_label) for a in prediction.annotations}
    assert found == {
        ((50, 20, 150, 60), "object", "red"),
        ((10, 70, 30, 90), "object", "blue"),
    }
    for annotation in prediction.annotations:
        assert annotation.score == pytest.approx(1.0)
        assert annotation.class_score is not None and annotation.class_score > 0.99


def test_all_crops_of_an_image_go_in_one_infer_call(chain: ChainTask, predict) -> None:
    picture = image(200, 100, [("red", (50, 20, 150, 60)), ("blue", (10, 70, 30, 90))])
    calls: list[tuple[str, int]] = []
    predict(chain, picture, calls=calls)
    assert calls == [("detector/model", 1), ("classifier/model", 2)]


def test_several_images_go_in_two_infer_calls_and_each_keeps_its_own_boxes(
    chain: ChainTask,
) -> None:
    pictures = [
        image(200, 100, [("red", (50, 20, 150, 60)), ("blue", (10, 70, 30, 90))]),
        image(200, 100, []),
        image(200, 100, [("blue", (120, 10, 180, 50))]),
    ]
    calls: list[tuple[str, int]] = []
    with Engine(chain, jobs=2) as engine:

        def infer(stage: str, inputs: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
            calls.append((stage, len(inputs)))
            return engine.infer(stage, inputs)

        sizes = [(p.shape[1], p.shape[0]) for p in pictures]
        predictions = chain.predict_many(pictures, infer, sizes)
        alone = [engine.predict(p) for p in pictures]
        prepared = [chain.preprocess(p) for p in pictures]  # as the engine's host threads do
        with_prepared = chain.predict_many(pictures, engine.infer, sizes, prepared)
    assert [p.to_dict() for p in with_prepared] == [p.to_dict() for p in predictions]
    assert calls == [("detector/model", 3), ("classifier/model", 3)]
    found = [{(a.box, a.class_label) for a in p.annotations} for p in predictions]
    assert found == [
        {((50, 20, 150, 60), "red"), ((10, 70, 30, 90), "blue")},
        set(),
        {((120, 10, 180, 50), "blue")},
    ]
    assert found == [{(a.box, a.class_label) for a in p.annotations} for p in alone]


def test_no_detection_means_no_classifier_call(chain: ChainTask, predict) -> None:
    calls: list[tuple[str, int]] = []
    prediction = predict(chain, image(200, 100), calls=calls)
    assert prediction.annotations == ()
    assert calls == [("detector/model", 1)]


def test_crops_come_from_the_decoded_image_when_it_is_reduced(chain: ChainTask, predict) -> None:
    # The image handed over is half the source size: boxes stay in source pixels.
    picture = image(200, 100, [("blue", (10, 70, 30, 90))])
    prediction = predict(chain, picture, source_size=(400, 200))
    [annotation] = prediction.annotations
    assert (annotation.box, annotation.class_label) == ((20, 140, 60, 180), "blue")
    assert (prediction.width, prediction.height) == (400, 200)


def test_both_models_are_stages_of_one_engine(chain: ChainTask) -> None:
    assert sorted(chain.graphs()) == ["classifier/model", "detector/model"]
    assert chain.kind == "chain"
    assert chain.decode_scale(4000, 3000) == 1


def test_both_parts_of_a_chain_must_be_tasks(tmp_path: Path) -> None:
    class NotATask:
        kind = "single"

    detector = RawTask(_models.identity_raw(tmp_path / "id.xml"))
    with pytest.raises(ModelError, match="not a task"):
        ChainTask(detector, NotATask())  # type: ignore[arg-type]


def test_a_parts_infer_all_reaches_the_engines_infer_many_with_the_prefix() -> None:
    asked: list[list[str]] = []

    class EngineInfer:  # an engine's infer: a ``many`` beside the call
        def __call__(self, stage: str, inputs: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
            raise AssertionError("infer_all must go to many")

        def many(
            self, calls: Mapping[str, Sequence[np.ndarray]]
        ) -> dict[str, list[list[np.ndarray]]]:
            asked.append(list(calls))
            return {
                stage: [[np.full(1, len(x))] for x in inputs] for stage, inputs in calls.items()
            }

    pixels = np.zeros((2, 2, 3), np.uint8)
    found = infer_all(_Prefixed(EngineInfer(), DETECTOR_PREFIX), {"a": [pixels], "b": [pixels] * 2})
    assert asked == [["detector/a", "detector/b"]]
    assert {stage: len(out) for stage, out in found.items()} == {"a": 1, "b": 2}
