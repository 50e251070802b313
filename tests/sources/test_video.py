"""Frame-exact parallel video decoding, on real videos with B-frames."""

from __future__ import annotations

import logging
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import pytest

from distinfer._errors import InputError
from distinfer.sources import (
    VideoInfo,
    VideoSegment,
    plan_segments,
    probe,
    read_segment,
    whole_video,
)

FRAMES = 96
WIDTH, HEIGHT = 160, 120
GOP = 12
BITS = 8  # frame numbers up to 255, one 20-pixel-wide block per bit
BLOCK = WIDTH // BITS


def _coded_frame(number: int) -> np.ndarray:
    """Frame ``number`` shows its number in binary as big black/white blocks."""
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for bit in range(BITS):
        if (number >> bit) & 1:
            image[: HEIGHT // 2, bit * BLOCK : (bit + 1) * BLOCK] = 255
    image[HEIGHT // 2 :] = (number * 7) % 200
    return image


def _read_code(image: np.ndarray) -> int:
    number = 0
    for bit in range(BITS):
        block = image[8 : HEIGHT // 2 - 8, bit * BLOCK + 4 : (bit + 1) * BLOCK - 4]
        if block.mean() > 128:
            number |= 1 << bit
    return number


def _encode(path: Path, codec: str, frames: int = FRAMES, **options: str) -> Path:
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.gop_size = GOP
        stream.codec_context.max_b_frames = 3
        if codec == "libx264":
            stream.options = {
                "preset": "ultrafast",
                "x264-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0:bframes=3:b-adapt=0",
            }
        for number in range(frames):
            frame = av.VideoFrame.from_ndarray(_coded_frame(number), format="rgb24")
            frame.pts = number
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _has_b_frames(path: Path) -> bool:
    """True when packets are stored out of presentation order (B-frames)."""
    with av.open(str(path)) as container:
        pts = [p.pts for p in container.demux(container.streams.video[0]) if p.size]
    return pts != sorted(pts)


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    made = {
        "h264.mp4": _encode(folder / "h264.mp4", "libx264"),
        # MPEG-4 part 2 with B-frames has open GOPs: B-frames shown before a
        # keyframe are stored after it.
        "mpeg4.mp4": _encode(folder / "mpeg4.mp4", "mpeg4"),
        "h264.mkv": _encode(folder / "h264.mkv", "libx264"),
    }
    for path in made.values():
        assert _has_b_frames(path), f"{path.name} must have B-frames for these tests to mean much"
    return made


VIDEO_NAMES = ["h264.mp4", "mpeg4.mp4", "h264.mkv"]


@pytest.mark.parametrize("name", VIDEO_NAMES)
def test_probe_numbers_frames_and_finds_keyframes(videos: dict[str, Path], name: str) -> None:
    info = probe(videos[name])
    assert info.frame_count == FRAMES == len(info.pts)
    assert (info.width, info.height) == (WIDTH, HEIGHT)
    assert info.fps == pytest.approx(25.0)
    assert list(info.pts) == sorted(set(info.pts))
    assert info.keyframes[0] == 0
    assert len(info.keyframes) >= FRAMES // GOP
    assert list(info.keyframes) == sorted(set(info.keyframes))


@pytest.mark.parametrize("name", VIDEO_NAMES)
@pytest.mark.parametrize("frames_per_segment", [1, 20])
def test_segments_decoded_in_any_order_give_every_frame_once(
    videos: dict[str, Path], name: str, frames_per_segment: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="distinfer.sources._video")
    path = videos[name]
    info = probe(path)
    segments = plan_segments(info, frames_per_segment)
    assert len(segments) > 1
    shuffled = segments[:]
    random.Random(7).shuffle(shuffled)

    def decode(segment: VideoSegment) -> list[tuple[int, int]]:
        return [(number, _read_code(rgb)) for number, rgb in read_segment(path, segment)]

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(decode, shuffled))
    seen: list[int] = []
    for segment, frames in zip(shuffled, results, strict=True):
        numbers = [number for number, _ in frames]
        assert numbers == list(range(segment.start_frame, segment.end_frame))
        assert all(number == code for number, code in frames), frames
        seen.extend(numbers)
    assert sorted(seen) == list(range(FRAMES))
    # Every segment started at its own keyframe, not by decoding from the start.
    assert "decoding from the start" not in caplog.text


def test_decoded_frames_are_rgb_u8_and_match_the_source(videos: dict[str, Path]) -> None:
    path = videos["h264.mp4"]
    info = probe(path)
    frames = dict(read_segment(path, plan_segments(info, 24)[1]))
    number, rgb = next(iter(frames.items()))
    assert rgb.dtype == np.uint8 and rgb.shape == (HEIGHT, WIDTH, 3)
    assert rgb.flags["C_CONTIGUOUS"]
    expected = _coded_frame(number).astype(np.int16)
    assert np.abs(rgb.astype(np.int16) - expected).mean() < 8


def test_whole_video_reads_every_frame_in_order(videos: dict[str, Path]) -> None:
    path = videos["mpeg4.mp4"]
    numbers = [(n, _read_code(rgb)) for n, rgb in read_segment(path, whole_video(probe(path)))]
    assert numbers == [(n, n) for n in range(FRAMES)]


def test_plan_segments_cuts_at_keyframes() -> None:
    pts = tuple(range(0, 2000, 20))
    info = VideoInfo("v.mp4", 50.0, 8, 8, 100, pts, (0, 10, 20, 30, 45, 90))
    spans = [(s.start_frame, s.end_frame) for s in plan_segments(info, 25)]
    assert spans == [(0, 30), (30, 90), (90, 100)]
    segment = plan_segments(info, 25)[1]
    assert segment.seek_pts == pts[30] and segment.pts == pts[30:90]
    assert [(s.start_frame, s.end_frame) for s in plan_segments(info, 1000)] == [(0, 100)]
    with pytest.raises(ValueError, match=">= 1"):
        plan_segments(info, 0)


def test_a_short_video_with_one_keyframe_is_one_segment(tmp_path: Path) -> None:
    path = _encode(tmp_path / "short.mp4", "libx264", frames=10)
    info = probe(path)
    assert info.keyframes == (0,)
    segments = plan_segments(info, 4)
    assert [(s.start_frame, s.end_frame) for s in segments] == [(0, 10)]
    assert [n for n, _ in read_segment(path, segments[0])] == list(range(10))


def test_a_cut_mp4_without_its_index_is_reported_as_truncated(
    videos: dict[str, Path], tmp_path: Path
) -> None:
    data = videos["h264.mp4"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(InputError, match="truncated"):
        probe(cut)


def test_a_cut_faststart_mp4_is_reported_as_truncated(tmp_path: Path) -> None:
    path = _encode(tmp_path / "fast.mp4", "libx264", movflags="faststart")
    data = path.read_bytes()
    cut = tmp_path / "fastcut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated"):
        probe(cut)


def test_a_video_without_frames_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height = WIDTH, HEIGHT
        container.start_encoding()
    with pytest.raises(InputError, match=r"no frames|no video stream"):
        probe(path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"", "empty file"), (b"just some text, not a video", "cannot open video")],
)
def test_files_that_are_not_videos_are_refused(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(content)
    with pytest.raises(InputError, match=expected):
        probe(path)
    with pytest.raises(InputError, match="video not found"):
        probe(tmp_path / "missing.mp4")
