"""The results folder on object storage (moto's S3 server): parts appear whole, the manifest
is replaced only if unchanged, leftovers are removed, ``--overwrite`` deletes only ours."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _s3 import Bucket

from distinfer import OutputError, read_results
from distinfer._errors import ConfigError, OutputExistsError
from distinfer.distributed._rows import ResultBatch, error_row, result_row
from distinfer.engine._prediction import Prediction
from distinfer.sinks import ParquetSink, export_results, open_results, prepare_output
from distinfer.storage import resolve_location


def rows(first: int, count: int) -> ResultBatch:
    return ResultBatch.from_rows(
        [
            error_row(i, f"s3://b/{i}.jpg", None, "broken", "n")
            if i % 5 == 4
            else result_row(i, f"s3://b/{i}.jpg", None, Prediction.empty(4, 3), "n")
            for i in range(first, first + count)
        ]
    )


def keys(bucket: Bucket, prefix: str) -> list[str]:
    listed = bucket.client().list_objects_v2(Bucket=bucket.name, Prefix=prefix)
    return [o["Key"].removeprefix(prefix) for o in listed.get("Contents", [])]


def test_parts_and_manifest_on_object_storage_resume_and_read_back(s3_bucket: Bucket) -> None:
    out = s3_bucket.uri("run/results")
    assert prepare_output(out, "job", overwrite=False) == 0
    sink = ParquetSink(out, fingerprint="job", rows_per_part=4)
    sink.write(rows(0, 10).records)
    assert sink.committed_until == 8 and keys(s3_bucket, "run/results/") == [
        "_manifest.json",
        "part-000000000000-000000000003.parquet",
        "part-000000000004-000000000007.parquet",
    ]
    # A crash after a part was written, before the manifest listed it:
    s3_bucket.put("run/results/part-000000000008-000000000011.parquet", b"half a run")
    assert prepare_output(out, "job", overwrite=False) == 8  # resumes after the committed
    resumed = ParquetSink(out, fingerprint="job", rows_per_part=4)  # removes the leftover
    assert "part-000000000008-000000000011.parquet" not in keys(s3_bucket, "run/results/")
    resumed.write(rows(8, 4).records)
    manifest = resumed.finish(12)
    assert manifest["finished"] and manifest["errors"] == 2
    assert read_results(out).column("index").to_pylist() == list(range(12))
    assert open_results(out).rows == 12
    with pytest.raises(OutputExistsError, match="already holds a finished run"):
        prepare_output(out, "job", overwrite=False)


def test_the_manifest_is_replaced_only_if_nobody_else_changed_it(s3_bucket: Bucket) -> None:
    out = s3_bucket.uri("race/")
    sink = ParquetSink(out, fingerprint="job", rows_per_part=2)
    sink.write(rows(0, 2).records)
    other = json.loads(
        s3_bucket.client()
        .get_object(Bucket=s3_bucket.name, Key="race/_manifest.json")["Body"]
        .read()
    )
    s3_bucket.put("race/_manifest.json", json.dumps({**other, "note": "another run"}).encode())
    with pytest.raises(OutputError, match="changed by someone else"):
        sink.write(rows(2, 2).records)


def test_a_fence_that_fails_stops_the_write_before_the_part(s3_bucket: Bucket) -> None:
    def lost() -> None:
        raise OutputError("this run no longer holds its output lock")

    sink = ParquetSink(s3_bucket.uri("fenced/"), fingerprint="job", rows_per_part=2, fence=lost)
    with pytest.raises(OutputError, match="no longer holds"):
        sink.write(rows(0, 2).records)
    assert keys(s3_bucket, "fenced/") == ["_manifest.json"]


def test_overwrite_deletes_only_a_results_folder(s3_bucket: Bucket) -> None:
    out = s3_bucket.uri("mine/")
    sink = ParquetSink(out, fingerprint="old", rows_per_part=2)
    sink.write(rows(0, 4).records)
    sink.finish(4)
    s3_bucket.put("mine/_lock", b"held by this run")
    assert prepare_output(out, "new", overwrite=True) == 0
    assert keys(s3_bucket, "mine/") == ["_lock"]
    s3_bucket.put("theirs/photo.jpg", b"x")
    with pytest.raises(OutputExistsError, match="not a distinfer results folder"):
        prepare_output(s3_bucket.uri("theirs"), "new", overwrite=True)
    assert keys(s3_bucket, "theirs/") == ["photo.jpg"]


def test_a_results_folder_on_object_storage_exports(s3_bucket: Bucket, tmp_path: Path) -> None:
    out = s3_bucket.uri("exp/")
    sink = ParquetSink(out, fingerprint="job", rows_per_part=3)
    sink.write(rows(0, 5).records)
    sink.finish(5)
    target = tmp_path / "rows.jsonl"
    summary = export_results(out, "jsonl", target)
    assert (summary.items, summary.errors) == (5, 1)
    assert len(target.read_text().splitlines()) == 5
    with pytest.raises(ConfigError, match=r"has no _manifest\.json"):
        open_results(s3_bucket.uri("nothing/"))
    assert resolve_location(out).uri == open_results(out).location.uri
