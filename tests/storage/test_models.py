"""Models on object storage: fetched once per node into a cache keyed by the objects'
identity, with its weights; a deployment folder whole; a changed model fetched again."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest
from _faults import FaultProxy
from _models import classifier, geti_deployment
from _s3 import Bucket

from distinfer import ModelError, RunConfig
from distinfer.storage import StorageOptions, fetch_model, resolve_location


def _upload(bucket: Bucket, folder: Path, prefix: str) -> None:
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        bucket.put(f"{prefix}/{path.relative_to(folder)}", path.read_bytes())


def test_a_model_file_is_fetched_once_with_its_weights(
    s3_bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    xml = classifier(tmp_path / "m" / "cls.xml")
    _upload(s3_bucket, xml.parent, "models")
    with FaultProxy(s3_bucket.endpoint) as proxy:
        where = resolve_location(
            s3_bucket.uri("models/cls.xml"), options=StorageOptions(endpoint=proxy.endpoint)
        )
        with concurrent.futures.ThreadPoolExecutor(4) as pool:  # actors starting together
            paths = set(pool.map(lambda _: fetch_model(where), range(4)))
        gets = [path for method, path in proxy.stats.requests if method == "GET"]
    (path,) = paths
    assert path.parent.parent == tmp_path / "cache" / "distinfer" / "models"
    assert sorted(p.name for p in path.parent.iterdir()) == ["cls.bin", "cls.xml"]
    assert path.with_suffix(".bin").read_bytes() == xml.with_suffix(".bin").read_bytes()
    assert sum("cls.bin" in g for g in gets) == 1  # fetched once, not once per process
    config = RunConfig.parse(
        {
            "model": {"path": s3_bucket.uri("models/cls.xml")},
            "input": {"images": "x"},
            "output": {"parquet": "y"},
        }
    )
    assert config.model.build_task(config.locations.model).kind == "classification"
    s3_bucket.put("models/cls.bin", xml.with_suffix(".bin").read_bytes() + b"\0")
    assert fetch_model(resolve_location(s3_bucket.uri("models/cls.xml"))) != path  # changed


def test_a_deployment_folder_is_fetched_whole_and_loads(
    s3_bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    xml = classifier(tmp_path / "m" / "cls.xml")
    folder = geti_deployment(tmp_path / "deploy", [("Colour", "classification", xml, ["red"])])
    _upload(s3_bucket, folder, "deploy")
    for uri in (s3_bucket.uri("deploy/"), s3_bucket.uri("deploy")):
        local = fetch_model(resolve_location(uri))
        assert sorted(p.relative_to(local) for p in local.rglob("*") if p.is_file()) == sorted(
            p.relative_to(folder) for p in folder.rglob("*") if p.is_file()
        )
    config = RunConfig.parse(
        {
            "model": {"path": s3_bucket.uri("deploy")},
            "input": {"images": "x"},
            "output": {"parquet": "y"},
        }
    )
    assert config.model.build_task(config.locations.model) is not None


def test_a_missing_model_or_missing_weights_is_a_model_error(
    s3_bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(ModelError, match="no model there"):
        fetch_model(resolve_location(s3_bucket.uri("nothing/m.xml")))
    s3_bucket.put("half/m.xml", b"<net/>")
    with pytest.raises(ModelError, match=r"its weights s3://.*/half/m\.bin are missing"):
        fetch_model(resolve_location(s3_bucket.uri("half/m.xml")))
    assert not (tmp_path / "cache" / "distinfer" / "models").exists() or not any(
        p.is_dir() for p in (tmp_path / "cache" / "distinfer" / "models").iterdir()
    )
