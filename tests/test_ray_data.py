"""``distinfer.ray_data.Predictor`` in real Ray Data pipelines: the rows of ``distinfer run``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from _jobs import job_config, rgb, write_images

from distinfer import ConfigError, ModelError, RunConfig, read_results, run
from distinfer.engine._prediction import RESULT_SCHEMA
from distinfer.ray_data import Predictor

COMPARED = ("width", "height", "predictions", "text", "error")


@pytest.fixture(scope="module")
def job(ray_session: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Six PNGs and a truncated JPEG, run by ``distinfer run``: its rows by source path."""
    tmp = tmp_path_factory.mktemp("ray_data")
    paths = write_images(tmp / "imgs", 6)
    broken = tmp / "imgs" / "part1" / "zz-broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    config = job_config(tmp, input={"images": str(tmp / "imgs")})
    assert run(RunConfig.parse(config)).errors == 1
    rows = {Path(r["source"]): r for r in read_results(tmp / "results").to_pylist()}
    return {"model": config["model"]["path"], "paths": paths, "broken": broken, "rows": rows}


def predicted(ds: Any) -> pa.Table:
    import ray

    return pa.concat_tables(ray.get(ds.to_arrow_refs()))


def map_predictor(ds: Any, job: dict[str, Any], **kwargs: Any) -> Any:
    from ray.data import ActorPoolStrategy

    options = {"compute": ActorPoolStrategy(size=1), "num_cpus": 1, "batch_size": 8, **kwargs}
    constructor = {"model": job["model"], **options.pop("fn_constructor_kwargs", {})}
    return ds.map_batches(Predictor, fn_constructor_kwargs=constructor, **options)


def test_images_from_read_images_get_the_rows_of_distinfer_run(job: dict[str, Any]) -> None:
    import ray.data

    ds = ray.data.read_images([str(p) for p in job["paths"]], include_paths=True, mode="RGB")
    table = predicted(map_predictor(ds, job, batch_size=4))

    assert table.column_names == ["path", *COMPARED]  # the image column is dropped
    for name in COMPARED:
        assert table.schema.field(name).type == RESULT_SCHEMA.field(name).type
    rows = table.to_pylist()
    assert sorted(Path(r["path"]) for r in rows) == job["paths"]
    for row in rows:
        expected = job["rows"][Path(row["path"])]
        assert {k: row[k] for k in COMPARED} == {k: expected[k] for k in COMPARED}
        assert row["predictions"][0]["label"] in ("red", "green", "blue")


def test_encoded_files_with_a_broken_one_in_the_batch_get_one_error_value(
    job: dict[str, Any],
) -> None:
    import ray.data

    files = sorted([*job["paths"], job["broken"]])
    ds = ray.data.read_binary_files([str(p) for p in files], include_paths=True)
    # One batch holds every file; pandas batches work as well as numpy ones.
    rows = predicted(map_predictor(ds, job, batch_size=16, batch_format="pandas")).to_pylist()

    assert sorted(Path(r["path"]) for r in rows) == files
    failed = [r for r in rows if r["error"] is not None]
    assert [Path(r["path"]) for r in failed] == [job["broken"]]
    assert failed[0]["error"] == job["rows"][job["broken"]]["error"]
    assert failed[0]["error"].startswith("truncated JPEG") and failed[0]["predictions"] == []
    for row in rows:
        expected = job["rows"][Path(row["path"])]
        assert {k: row[k] for k in COMPARED} == {k: expected[k] for k in COMPARED}


def test_arrays_of_the_wrong_shape_are_error_values_with_a_hint(job: dict[str, Any]) -> None:
    import ray.data

    good = rgb(job["paths"][0])
    items = [
        {"id": 0, "image": good},
        {"id": 1, "image": good[..., :1]},  # one channel
        {"id": 2, "image": np.dstack([good, good[..., :1]])},  # RGBA
        {"id": 3, "image": good},
    ]
    ds = ray.data.from_items(items)
    options = {"fn_constructor_kwargs": {"keep_input": True}}
    rows = sorted(predicted(map_predictor(ds, job, **options)).to_pylist(), key=lambda r: r["id"])

    assert [r["id"] for r in rows] == [0, 1, 2, 3]
    expected = job["rows"][job["paths"][0]]
    for row in (rows[0], rows[3]):
        assert {k: row[k] for k in COMPARED} == {k: expected[k] for k in COMPARED}
    for row, shape in ((rows[1], "(40, 48, 1)"), (rows[2], "(40, 48, 4)")):
        assert row["error"].startswith(f"expected an HxWx3 RGB image, got shape {shape}")
        assert row["error"].endswith('ray.data.read_images(..., mode="RGB") gives HxWx3 RGB arrays')
        assert row["predictions"] == [] and row["width"] is None
    assert np.asarray(rows[0]["image"]).shape == good.shape  # kept: keep_input=True


def test_a_batch_without_images_is_a_usage_error(job: dict[str, Any]) -> None:
    predictor = Predictor(job["model"])
    try:
        with pytest.raises(ConfigError, match=r"neither an 'image' column .* it has \['path'\]"):
            predictor({"path": np.array(["a.png"])})
        with pytest.raises(ConfigError, match=r"already has the columns \['text'\]"):
            predictor({"bytes": np.array([b"x"], dtype=object), "text": np.array(["t"])})
    finally:
        predictor.close()


def test_bad_model_arguments_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="batch: Input should be greater than or equal to 1"):
        Predictor("ppocr-det", batch=0)
    with pytest.raises(ModelError, match=r"missing\.xml: model file not found"):
        Predictor(str(tmp_path / "missing.xml"))


def test_encoded_images_over_the_pixel_limit_are_error_values(job: dict[str, Any]) -> None:
    by_width = sorted(job["paths"], key=lambda p: job["rows"][p]["width"])
    small, large = by_width[0], by_width[-1]  # 48x40 and 52x40 pixels
    predictor = Predictor(job["model"], max_image_pixels=2000)
    try:
        batch = {
            "path": np.array([str(small), str(large)], dtype=object),
            "bytes": np.array([small.read_bytes(), large.read_bytes()], dtype=object),
        }
        rows = predictor(batch).to_pylist()
    finally:
        predictor.close()
    assert [r["path"] for r in rows] == [str(small), str(large)]
    assert {k: rows[0][k] for k in COMPARED} == {k: job["rows"][small][k] for k in COMPARED}
    assert rows[1]["error"].startswith("image too large: 52x40 = 2,080 pixels is over the limit")
    assert rows[1]["predictions"] == []


def test_an_empty_batch_gives_no_rows_with_the_columns(job: dict[str, Any]) -> None:
    predictor = Predictor(job["model"])
    try:
        table = predictor({"path": np.array([], dtype=object), "bytes": np.array([], dtype=object)})
    finally:
        predictor.close()
    assert table.num_rows == 0 and table.column_names == ["path", *COMPARED]
