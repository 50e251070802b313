"""Object storage against a real S3 endpoint (moto): listing, reading, writing, conditions."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest
from _faults import FaultProxy
from _s3 import Bucket

from distinfer.storage import (
    Location,
    ObjectSizeError,
    PreconditionFailedError,
    StorageAccessError,
    StorageOptions,
    resolve_location,
)

TREE = ["Z.jpg", "a.jpg", "a/b.jpg", "a/a.jpg", "a-b.jpg", "a0.jpg", "b/c/d.jpg", "b.jpg", "ü.jpg"]


def _put_many(bucket: Bucket, keys: list[str]) -> None:
    fs = resolve_location(bucket.uri(), ".").fs
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda k: fs.write(k, b"x"), keys))


def test_listing_is_lazy_page_by_page(s3_bucket: Bucket) -> None:
    keys = [f"many/{i:05d}.jpg" for i in range(1050)]
    _put_many(s3_bucket, keys)
    with FaultProxy(s3_bucket.endpoint) as proxy:
        loc = resolve_location(s3_bucket.uri("many/"), ".", StorageOptions(endpoint=proxy.endpoint))
        listing = loc.fs.list(loc.path)
        first = next(listing)
        assert first.path == "many/00000.jpg" and first.size == 1
        assert len(proxy.stats.requests) == 1  # one page of 1,000 of two: it yields as it goes
        rest = [info.path for info in listing]
        assert len(proxy.stats.requests) == 2
    assert [first.path, *rest] == keys


def test_listing_order_matches_the_local_order(s3_bucket: Bucket, tmp_path: Path) -> None:
    for key in TREE:
        s3_bucket.put(f"tree/{key}", b"x")
        (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / key).write_bytes(b"x")
    remote = resolve_location(s3_bucket.uri("tree"), ".")
    local = resolve_location(str(tmp_path), ".")
    remote_keys = [i.path.removeprefix("tree/") for i in remote.fs.list(remote.path)]
    local_keys = [i.path.removeprefix(f"{tmp_path}/") for i in local.fs.list(local.path)]
    assert remote_keys == local_keys == sorted(TREE)
    assert local_keys.index("a.jpg") < local_keys.index("a/a.jpg")  # as S3 lists keys


def test_listing_skips_folder_markers_and_stays_below_the_prefix(s3_bucket: Bucket) -> None:
    for key in ["in/", "in/x.jpg", "in/sub/", "in/sub/y.jpg", "inside.jpg", "in.jpg"]:
        s3_bucket.put(key, b"" if key.endswith("/") else b"x")
    loc = resolve_location(s3_bucket.uri("in/"), ".")
    assert [i.path for i in loc.fs.list(loc.path)] == ["in/sub/y.jpg", "in/x.jpg"]
    assert list(loc.fs.list("nothing-here")) == []


def test_listing_a_missing_bucket_says_so(s3_server: object, s3_bucket: Bucket) -> None:
    loc = resolve_location("s3://no-such-bucket-here/x/", ".")
    with pytest.raises(StorageAccessError, match="bucket does not exist"):
        next(loc.fs.list(loc.path))


def test_info_read_and_ranges(s3_bucket: Bucket) -> None:
    s3_bucket.put("obj.bin", bytes(range(256)) * 4)
    loc = resolve_location(s3_bucket.uri("obj.bin"), ".")
    info = loc.fs.info(loc.path)
    assert (info.path, info.size, info.name) == ("obj.bin", 1024, "obj.bin")
    assert info.tag and info.mtime_s > 0
    assert loc.fs.read(loc.path, max_bytes=1024) == bytes(range(256)) * 4
    assert loc.fs.read_range(loc.path, 250, 10) == bytes([250, 251, 252, 253, 254, 255, 0, 1, 2, 3])
    assert loc.fs.read_range(loc.path, 5, 0) == b""
    with pytest.raises(ObjectSizeError, match="1,024 bytes, over the limit of 1,000"):
        loc.fs.read(loc.path, max_bytes=1000)
    with pytest.raises(ObjectSizeError, match="only 24 there"):
        loc.fs.read_range(loc.path, 1000, 100)
    with pytest.raises(ObjectSizeError):
        loc.fs.read_range(loc.path, 5000, 10)
    missing = loc.parent.join("missing.bin")
    for call in (
        lambda: missing.fs.info(missing.path),
        lambda: missing.fs.read(missing.path, 10),
        lambda: missing.fs.read_range(missing.path, 0, 1),
        lambda: missing.fs.open(missing.path),
    ):
        with pytest.raises(FileNotFoundError, match=f"{missing.uri}: not found"):
            call()


def test_write_upload_delete(s3_bucket: Bucket, tmp_path: Path) -> None:
    out = resolve_location(s3_bucket.uri("out/"), ".")
    part = out.join("part-0.parquet")
    tag = part.fs.write(part.path, b"rows")
    assert tag and part.fs.info(part.path).tag == tag
    video = tmp_path / "annotated.mp4"
    video.write_bytes(bytes(range(256)) * (6 * 4096 + 1))  # 6 MiB: over one 5 MiB part
    with FaultProxy(s3_bucket.endpoint) as proxy:
        upload = resolve_location(
            s3_bucket.uri("out/video.mp4"), ".", StorageOptions(endpoint=proxy.endpoint)
        )
        upload.fs.upload(upload.path, video)
    parts = [path for method, path in proxy.stats.requests if method == "PUT"]
    assert len(parts) == 2 and all("partNumber=" in path for path in parts)  # multipart
    uploaded = out.join("video.mp4")
    assert uploaded.fs.read(uploaded.path, 10 << 20) == video.read_bytes()
    part.fs.delete(part.path)
    part.fs.delete(part.path)  # missing is fine
    assert [i.path for i in out.fs.list(out.path)] == ["out/video.mp4"]


def _conditional_writes(loc: Location) -> None:
    fs, path = loc.fs, loc.path
    first = fs.create(path, b'{"token": "a"}')
    with pytest.raises(FileExistsError):
        fs.create(path, b'{"token": "b"}')
    assert fs.create(path, b'{"token": "a"}') == first  # our own write, found by a retry
    second = fs.replace(path, b'{"token": "a", "n": 2}', if_match=first)
    assert second != first
    with pytest.raises(PreconditionFailedError):
        fs.replace(path, b'{"token": "c"}', if_match=first)
    assert fs.read(path, 100) == b'{"token": "a", "n": 2}'
    fs.delete(path)
    with pytest.raises((FileNotFoundError, PreconditionFailedError)):
        fs.replace(path, b"x", if_match=second)


def test_create_and_replace_on_object_storage(s3_bucket: Bucket) -> None:
    _conditional_writes(resolve_location(s3_bucket.uri("out/_manifest.json"), "."))


def test_create_and_replace_on_a_local_disk(tmp_path: Path) -> None:
    _conditional_writes(resolve_location(str(tmp_path / "out" / "_manifest.json"), "."))


def test_local_writes_are_whole_and_leave_no_temporary_files(tmp_path: Path) -> None:
    loc = resolve_location(str(tmp_path / "a" / "b" / "part.parquet"), ".")
    loc.fs.write(loc.path, b"one")
    loc.fs.write(loc.path, b"two")
    assert Path(loc.path).read_bytes() == b"two"
    assert [p.name for p in Path(loc.path).parent.iterdir()] == ["part.parquet"]
    with pytest.raises(ObjectSizeError, match="over the limit of 2"):
        loc.fs.read(loc.path, 2)
