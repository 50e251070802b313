"""Ranged reads from object storage: archives and videos read without downloading them whole."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import av
import numpy as np
import pytest
from _s3 import Bucket

from distinfer.sinks import VideoSink
from distinfer.storage import Location, RangedReader, resolve_location

MEMBER_BYTES = 256 << 10
BLOCK = 16 << 10


def _members(n: int) -> dict[str, bytes]:
    rng = np.random.default_rng(7)
    return {f"pages/p{i:03d}.jpg": rng.bytes(MEMBER_BYTES) for i in range(n)}


def _uploaded(bucket: Bucket, local: Path) -> Location:
    loc = resolve_location(bucket.uri(f"in/{local.name}"), ".")
    loc.fs.upload(loc.path, local)
    return loc


def _open(loc: Location, block_size: int = BLOCK) -> RangedReader:
    reader = loc.fs.open(loc.path, block_size=block_size)
    assert isinstance(reader, RangedReader)
    return reader


def test_plain_tar_lists_headers_and_reads_a_member_by_range(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    members = _members(20)
    archive = tmp_path / "pages.tar"
    with tarfile.open(archive, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    loc = _uploaded(s3_bucket, archive)
    total = archive.stat().st_size
    with _open(loc) as reader, tarfile.open(fileobj=reader, mode="r:") as tar:
        infos = tar.getmembers()
        assert [i.name for i in infos] == list(members)
        listed = reader.stats.bytes
        member = tar.extractfile(infos[7])
        assert member is not None and member.read() == members["pages/p007.jpg"]
    assert listed <= 21 * BLOCK < total / 10  # one block per header, never the members
    assert reader.stats.requests <= 22 + MEMBER_BYTES // BLOCK
    third = loc.fs.read_range(loc.path, infos[3].offset_data, infos[3].size)
    assert third == members["pages/p003.jpg"]


def test_compressed_tar_streams_once(s3_bucket: Bucket, tmp_path: Path) -> None:
    members = _members(6)
    archive = tmp_path / "pages.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    loc = _uploaded(s3_bucket, archive)
    got = {}
    with _open(loc, block_size=1 << 20) as reader, tarfile.open(fileobj=reader, mode="r|*") as tar:
        for info in tar:
            member = tar.extractfile(info)
            assert member is not None
            got[info.name] = member.read()
    assert got == members
    assert reader.stats.bytes == archive.stat().st_size  # every byte fetched exactly once


def test_zip_member_read_through_its_central_directory(s3_bucket: Bucket, tmp_path: Path) -> None:
    members = _members(20)
    archive = tmp_path / "pages.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    loc = _uploaded(s3_bucket, archive)
    with _open(loc) as reader, zipfile.ZipFile(reader) as zf:
        assert zf.namelist() == list(members)
        assert zf.read("pages/p011.jpg") == members["pages/p011.jpg"]
    assert reader.stats.bytes < 2 * MEMBER_BYTES + 4 * BLOCK < archive.stat().st_size / 8


def test_seek_and_tell_work_like_a_file(s3_bucket: Bucket) -> None:
    s3_bucket.put("in/abc.bin", b"0123456789")
    with _open(resolve_location(s3_bucket.uri("in/abc.bin"), "."), block_size=4) as f:
        assert f.seek(0, os.SEEK_END) == 10 == f.size
        assert f.read() == b""
        assert f.seek(-3, os.SEEK_END) == 7 and f.read(2) == b"78" and f.tell() == 9
        assert f.seek(2) == 2 and f.read(3) == b"234"
        assert f.seek(1, os.SEEK_CUR) == 6 and f.read() == b"6789"
        with pytest.raises(OSError, match="negative seek"):
            f.seek(-1)


def _video(path: Path, frames: int) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    written = []
    with VideoSink(path, 10, (160, 120), keyframe_interval=10) as sink:
        for _ in range(frames):
            frame = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
            sink.write(frame)
            written.append(frame)
    return written


def _decode(source: str | RangedReader, count: int, seek_pts: int | None = None) -> list[bytes]:
    with av.open(source) as container:
        stream = container.streams.video[0]
        if seek_pts is not None:
            container.seek(seek_pts, stream=stream)
        frames = []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24").tobytes())
            if len(frames) == count:
                break
        return frames


def test_pyav_decodes_from_ranged_reads(s3_bucket: Bucket, tmp_path: Path) -> None:
    video = tmp_path / "noise.mp4"
    _video(video, 60)
    loc = _uploaded(s3_bucket, video)
    size = video.stat().st_size
    with _open(loc, block_size=32 << 10) as reader:
        frames = _decode(reader, 3)
    assert frames == _decode(str(video), 3)
    assert reader.stats.bytes < size / 2  # the first frames, and the index at the end
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        keyframes = [p.pts for p in container.demux(stream) if p.is_keyframe and p.pts]
    with _open(loc, block_size=32 << 10) as reader:
        assert _decode(reader, 2, seek_pts=keyframes[-1]) == _decode(
            str(video), 2, seek_pts=keyframes[-1]
        )
