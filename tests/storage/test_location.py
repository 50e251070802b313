"""Locations: what a user writes becomes (filesystem, path) once, and travels without secrets."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import distinfer.storage as storage
from distinfer.storage import (
    Location,
    ObjectFileSystem,
    StorageOptions,
    UnsupportedLocationError,
    resolve_location,
)


def test_public_api_is_sorted_and_importable() -> None:
    assert storage.__all__ == sorted(storage.__all__)
    for name in storage.__all__:
        assert getattr(storage, name) is not None


def test_importing_the_package_does_not_load_obstore() -> None:
    code = (
        "import sys, distinfer.storage as s\n"
        "loc = s.resolve_location('s3://bucket/key', '.')\n"
        "assert 'obstore' not in sys.modules, 'loaded too early'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("pages", "/srv/jobs/pages"),
        ("pages/", "/srv/jobs/pages/"),
        ("./a/../b.jpg", "/srv/jobs/b.jpg"),
        ("/data//x/./y.tar", "/data/x/y.tar"),
        ("file:///data/x%20y.jpg", "/data/x y.jpg"),
        ("file://localhost/data/in/", "/data/in/"),
    ],
)
def test_local_paths_become_absolute_and_normalised(value: str, expected: str) -> None:
    loc = resolve_location(value, base_dir="/srv/jobs")
    assert loc.is_local and loc.scheme == "file"
    assert loc.uri == str(loc) == loc.path == expected


def test_home_is_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_location("~/in", base_dir="/elsewhere").path == f"{tmp_path}/in"


@pytest.mark.parametrize(
    ("value", "scheme", "bucket", "path", "uri"),
    [
        ("s3://bkt/pages/", "s3", "bkt", "pages/", "s3://bkt/pages/"),
        ("s3://bkt/pages", "s3", "bkt", "pages", "s3://bkt/pages"),
        ("s3://bkt", "s3", "bkt", "", "s3://bkt/"),
        ("S3://bkt/a b/ü.jpg", "s3", "bkt", "a b/ü.jpg", "s3://bkt/a b/ü.jpg"),
        ("gs://bkt/x.zip", "gs", "bkt", "x.zip", "gs://bkt/x.zip"),
        ("gcs://bkt/x.zip", "gs", "bkt", "x.zip", "gs://bkt/x.zip"),
        ("az://container/v.mp4", "az", "container", "v.mp4", "az://container/v.mp4"),
        ("abfss://c@acct.dfs.core.windows.net/d/", "abfss", "c@acct.dfs.core.windows.net", "d/",
         "abfss://c@acct.dfs.core.windows.net/d/"),
        ("https://example.com:8443/a/b.jpg", "https", "example.com:8443", "a/b.jpg",
         "https://example.com:8443/a/b.jpg"),
    ],
)  # fmt: skip
def test_object_store_uris_round_trip(
    value: str, scheme: str, bucket: str, path: str, uri: str
) -> None:
    loc = resolve_location(value, base_dir="/srv")
    assert isinstance(loc.fs, ObjectFileSystem)
    assert (loc.scheme, loc.fs.bucket, loc.path, loc.uri) == (scheme, bucket, path, uri)
    assert not loc.is_local
    assert resolve_location(loc.uri, base_dir="/srv") == loc


def test_trailing_slash_says_prefix() -> None:
    assert resolve_location("s3://b/pages/", ".").is_prefix
    assert not resolve_location("s3://b/pages", ".").is_prefix
    assert resolve_location("s3://b", ".").is_prefix
    assert resolve_location("/data/pages/", ".").is_prefix
    assert not resolve_location("/data/pages", ".").is_prefix


def test_name_suffix_parent_join() -> None:
    loc = resolve_location("s3://b/in/a.tar.gz", ".")
    assert (loc.name, loc.suffix) == ("a.tar.gz", ".gz")
    assert loc.parent.uri == "s3://b/in"
    assert loc.parent.parent.uri == "s3://b/"
    assert loc.parent.parent.parent.uri == "s3://b/"
    assert resolve_location("s3://b/out/", ".").join("part-0.parquet").uri == (
        "s3://b/out/part-0.parquet"
    )
    assert resolve_location("s3://b", ".").join("x", "y/z.jpg").uri == "s3://b/x/y/z.jpg"
    local = resolve_location("/data/out", ".")
    assert local.join("_lock").uri == "/data/out/_lock"
    assert local.parent.uri == "/data" and resolve_location("/", ".").parent.uri == "/"
    assert resolve_location("s3://b/in/", ".").name == "in"
    assert resolve_location("/data/.hidden", ".").suffix == ""


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("hdfs://namenode:8020/data", ["HDFS is not supported", "mount", "storage.endpoint"]),
        ("webhdfs://nn/data", ["HDFS is not supported"]),
        ("ftp://host/x", ["unsupported scheme 'ftp'", "s3://", "gs://", "az://", "file://"]),
        ("s3a://bkt/x", ["unsupported scheme 's3a'"]),
        ("s3:///key", ["no bucket"]),
        ("https://host/a.jpg?X-Amz-Signature=abc", ["(signed URLs) are not supported"]),
        ("s3://bkt/a//b.jpg", ["empty, '.' or '..' segment"]),
        ("s3://bkt/a/../b.jpg", ["empty, '.' or '..' segment"]),
        ("file://otherhost/x", ["file:///absolute/path"]),
        ("", ["expected a path or URI"]),
    ],
)
def test_refusals_name_the_problem_and_what_to_do(value: str, words: list[str]) -> None:
    with pytest.raises(UnsupportedLocationError) as info:
        resolve_location(value, base_dir="/srv")
    assert isinstance(info.value, storage.StorageError) and isinstance(info.value, ValueError)
    for word in words:
        assert word in str(info.value)
    assert "abc" not in str(info.value)  # a signed URL's signature is never echoed


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="retry_timeout_s"):
        StorageOptions(retry_timeout_s=0)
    with pytest.raises(ValueError, match="endpoint"):
        StorageOptions(endpoint="localhost:9000")
    with pytest.raises(ValueError, match="lock_expiry_s"):
        StorageOptions(lock_expiry_s=float("nan"))
    with pytest.raises(ValueError, match="credentials do not belong"):
        StorageOptions(endpoint="http://user:secret@host:9000")


def test_pickled_location_carries_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "SECRET-pickle-4f9c2a"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAPICKLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_SESSION_TOKEN", secret + "-token")
    options = StorageOptions(endpoint="http://127.0.0.1:9", region="eu-west-1")
    loc = resolve_location("s3://bkt/out/", ".", options)
    loc.fs.info  # noqa: B018  # an attribute only: building the store needs no request
    data = pickle.dumps(loc)
    assert secret.encode() not in data and b"AKIAPICKLE" not in data
    assert secret not in repr(loc) and secret not in repr(loc.fs)
    back = pickle.loads(data)
    assert back == loc and back.fs is loc.fs  # one filesystem per process and environment
    assert isinstance(back, Location)


def test_a_changed_environment_gets_its_own_filesystem(monkeypatch: pytest.MonkeyPatch) -> None:
    first = resolve_location("s3://bkt/x", ".")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "another-key")
    second = resolve_location("s3://bkt/x", ".")
    assert first == second  # same place
    assert first.fs is not second.fs  # but built from this environment's credentials
    assert os.environ["AWS_ACCESS_KEY_ID"] == "another-key"
