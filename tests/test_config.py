from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from distinfer import ConfigError, RunConfig
from distinfer._main import main

GOOD: dict[str, Any] = {
    "model": {"name": "ppocr"},
    "input": {"images": "pages"},
    "output": {"parquet": "out/results"},
}


def with_(section: str, **values: Any) -> dict[str, Any]:
    return {**GOOD, section: {**GOOD.get(section, {}), **values}}


def test_a_single_string_becomes_a_list_and_defaults_fill_in() -> None:
    config = RunConfig.parse(GOOD)
    assert config.input.images == ["pages"]
    assert config.cluster.address is None
    assert config.cluster.dashboard is False


@pytest.mark.parametrize(
    ("data", "key", "words"),
    [
        (with_("model", nmae="x"), "model.nmae", "unknown key"),
        ({**GOOD, "outptu": {}}, "outptu", "unknown key"),
        (with_("model", name="yolo9000"), "model", "unknown bundled model"),
        (with_("model", path="m.xml"), "model", "exactly one"),
        (with_("cluster", items_per_unit=0), "cluster.items_per_unit", "greater than 0, or auto"),
        (with_("cluster", items_per_unit="many"), "cluster.items_per_unit", "or auto (got 'many')"),
        (with_("cluster", progress="fancy"), "cluster.progress", "auto"),
        (with_("model", batch=0), "model.batch", "greater than or equal to 1"),
        ({"model": {"name": "ppocr"}, "input": {"images": "p"}}, "output", "missing"),
        ({**GOOD, "input": {}}, "input", "input.images and/or input.videos"),
    ],
)
def test_bad_keys_name_the_key_path(data: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        RunConfig.parse(data)
    assert info.value.key == key
    assert key in str(info.value) and words in str(info.value)


def test_overrides_set_nested_keys_with_yaml_values() -> None:
    config = RunConfig.parse(
        GOOD, ["cluster.address=auto", "cluster.items_per_unit=32", "input.images=[a, b]"]
    )
    assert config.cluster.address == "auto"
    assert config.cluster.items_per_unit == 32
    assert config.input.images == ["a", "b"]
    with pytest.raises(ConfigError, match=r"key\.path=value"):
        RunConfig.parse(GOOD, ["cluster.address"])


def test_yaml_is_loaded_safely_and_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "pages").mkdir()
    (tmp_path / "job.yaml").write_text(
        "model: {name: ppocr}\ninput: {images: pages}\noutput: {parquet: out}\n"
    )
    config = RunConfig.load(tmp_path / "job.yaml")
    config.check_paths()
    assert config.locations.images[0].uri == str(tmp_path / "pages")
    assert config.locations.parquet.uri == str(tmp_path / "out")
    (tmp_path / "evil.yaml").write_text("model: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        RunConfig.load(tmp_path / "evil.yaml")


def test_missing_inputs_are_found_before_anything_runs(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("model: {name: ppocr}\ninput: {images: [nowhere/]}\noutput: {parquet: out}\n")
    with pytest.raises(ConfigError) as info:
        RunConfig.load(path).check_paths()
    assert info.value.key == "input.images[0]"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            "model: {name: ppocr, colour: red}\ninput: {images: .}\noutput: {parquet: o}\n",
            "model.colour: unknown key",
        ),
        ("model: {path: missing.xml}\ninput: {images: .}\noutput: {parquet: o}\n", "model.path"),
        ("- just\n- a list\n", "mapping"),
        ("", "empty"),
    ],
)
def test_cli_exits_2_with_one_message_and_no_traceback(
    tmp_path: Path, text: str, needle: str
) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    for command in ("validate", "run"):
        result = CliRunner().invoke(main, [command, str(path)])
        assert result.exit_code == 2, result.output
        assert needle in result.output
        assert "Traceback" not in result.output


def test_validate_accepts_a_good_config(tmp_path: Path) -> None:
    (tmp_path / "pages").mkdir()
    path = tmp_path / "job.yaml"
    path.write_text("model: {name: ppocr-det}\ninput: {images: pages}\noutput: {parquet: o}\n")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output


def test_every_location_is_resolved_once_at_load_with_the_storage_options(tmp_path: Path) -> None:
    config = RunConfig.parse(
        {
            "model": {"path": "s3://models/det/model.xml"},
            "input": {"images": ["s3://scans/pages/", "local/*.jpg"], "videos": "gs://cams/a.mp4"},
            "output": {"parquet": "s3://out/results", "video": "v.mp4", "overlays": "s3://out/o/"},
            "storage": {"endpoint": "http://127.0.0.1:9000", "region": "eu-west-1"},
            "base_dir": str(tmp_path),
        }
    )
    where = config.locations
    assert [loc.uri for loc in where.images] == ["s3://scans/pages/", f"{tmp_path}/local/*.jpg"]
    assert (where.model and where.model.uri, where.videos[0].scheme) == (
        "s3://models/det/model.xml",
        "gs",
    )
    assert where.parquet.fs.options.endpoint == "http://127.0.0.1:9000"  # type: ignore[attr-defined]
    assert where.video is not None and where.video.uri == f"{tmp_path}/v.mp4"
    assert where.overlays is not None and where.overlays.is_prefix
    config.check_paths()  # a remote input is checked for access later, not here


@pytest.mark.parametrize(
    ("section", "value", "key", "words"),
    [
        ("input", {"images": ["pages", "hdfs://nn/pages"]}, "input.images[1]", "HDFS is not"),
        ("output", {"parquet": "ftp://host/out"}, "output.parquet", "unsupported scheme"),
        ("model", {"path": "s3:///m.xml"}, "model.path", "no bucket"),
    ],
)
def test_a_location_that_cannot_be_reached_names_its_key(
    section: str, value: dict[str, Any], key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as info:
        RunConfig.parse(with_(section, **value) if section != "model" else {**GOOD, "model": value})
    assert info.value.key == key and str(info.value).startswith(f"{key}: ")
    assert words in str(info.value)


def test_the_storage_section_takes_no_secret_and_never_echoes_one() -> None:
    with pytest.raises(ConfigError) as info:
        RunConfig.parse({**GOOD, "storage": {"secret_access_key": "hunter2-SECRET"}})
    assert "credentials never go in the job file" in str(info.value)
    assert "hunter2-SECRET" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        RunConfig.parse({**GOOD, "storage": {"endpoint": "http://me:hunter2-SECRET@minio:9000"}})
    assert info.value.key == "storage.endpoint" and "do not belong" in str(info.value)
    assert "hunter2-SECRET" not in str(info.value)
    with pytest.raises(ConfigError, match=r"storage.retry_timeout_s: .*less than or equal to 300"):
        RunConfig.parse({**GOOD, "storage": {"retry_timeout_s": 900}})
    options = RunConfig.parse({**GOOD, "storage": {"anonymous": True}}).storage.options()
    assert options.anonymous and options.lock_expiry_s == 60


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parents[1] / "configs").glob("*.yaml")), ids=lambda p: p.name
)
def test_the_example_job_files_load(path: Path) -> None:
    config = RunConfig.load(path)  # keys, types, and every location resolved (no network)
    assert config.locations.parquet is not None
    if path.name == "s3.yaml":
        assert {loc.scheme for _, loc in config.locations.all()} == {"s3"}
