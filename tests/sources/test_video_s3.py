"""Videos on object storage: probed from a stream of ranged reads, and a segment decoded
frame-exact from the ranged reads it needs, never the whole file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

import av
import numpy as np
import pytest
from _s3 import Bucket

from distinfer._errors import InputError
from distinfer.sources import plan_segments, probe, read_segment
from distinfer.storage import FileSystem, Location, resolve_location

FRAMES, GOP = 192, 12  # 18 MB: eight segments of 2 GOPs, each about 18 read blocks


def _noise_video(path: Path) -> Path:
    """Incompressible frames (so the file is large next to a read block), B-frames."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.gop_size = GOP
        stream.codec_context.max_b_frames = 2
        stream.codec_context.bit_rate = 20_000_000
        for number in range(FRAMES):
            image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = number
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


class CountingFS:
    """A filesystem that keeps the readers it opens, to read their ``stats`` after."""

    def __init__(self, fs: FileSystem) -> None:
        self.fs = fs
        self.readers: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fs, name)

    def open(self, path: str, **options: Any) -> BinaryIO:
        reader = self.fs.open(path, **options)
        self.readers.append(reader)
        return reader


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _noise_video(tmp_path_factory.mktemp("s3-video") / "noise.mp4")


def test_a_segment_is_decoded_from_ranged_reads_of_its_own_part(
    s3_bucket: Bucket, video: Path
) -> None:
    s3_bucket.put("cams/noise.mp4", video.read_bytes())
    remote = resolve_location(s3_bucket.uri("cams/noise.mp4"))
    info = probe(remote)
    local_info = probe(video)
    assert (info.frame_count, info.pts, info.keyframes) == (
        local_info.frame_count,
        local_info.pts,
        local_info.keyframes,
    )
    assert info.path == remote.uri
    segments = plan_segments(info, 2 * GOP)
    assert len(segments) == 8
    counting = CountingFS(remote.fs)
    sixth = segments[5]
    frames = list(read_segment(Location(counting, remote.path), sixth))  # type: ignore[arg-type]
    expected = list(read_segment(video, sixth))
    assert [n for n, _ in frames] == list(range(sixth.start_frame, sixth.end_frame))
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(frames, expected, strict=True))
    fetched = sum(reader.stats.bytes for reader in counting.readers)
    size = video.stat().st_size
    assert 0 < fetched < 0.35 * size, f"fetched {fetched:,} of {size:,} bytes"


def test_a_missing_or_broken_remote_video_is_an_input_error(s3_bucket: Bucket) -> None:
    with pytest.raises(InputError, match=r"video not found: s3://.*/cams/none\.mp4"):
        probe(resolve_location(s3_bucket.uri("cams/none.mp4")))
    s3_bucket.put("cams/cut.mp4", b"\x00\x00\x00\x18ftypisom" + b"\x00" * 100)
    with pytest.raises(InputError, match="cannot open video s3://"):
        probe(resolve_location(s3_bucket.uri("cams/cut.mp4")))
