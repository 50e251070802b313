"""Writing annotated video: frame order, size, rate, and the atomic commit."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from distinfer._errors import InputError, OutputError
from distinfer.sinks import VideoSink, video_encoder


def _frame(level: int, width: int = 64, height: int = 48) -> np.ndarray:
    return np.full((height, width, 3), level, np.uint8)


@dataclass(frozen=True)
class _Stream:
    width: int
    height: int
    rate: Fraction | None
    codec: str


def _read_back(path: Path) -> tuple[list[np.ndarray], _Stream]:
    """The frames and what the stream says of itself, read while the file is open
    (a PyAV stream's fields are not to be read once its container is closed)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        context = stream.codec_context
        return frames, _Stream(context.width, context.height, stream.average_rate, context.name)


def test_frames_are_written_in_order_with_the_right_size_and_rate(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    levels = [(i * 9) % 250 for i in range(30)]
    with VideoSink(path, fps=25, size=(64, 48)) as sink:
        for level in levels:
            sink.write(_frame(level))
    assert sink.frames_written == 30
    frames, stream = _read_back(path)
    assert len(frames) == 30
    assert (stream.width, stream.height) == (64, 48)
    assert stream.rate == 25
    assert stream.codec == ("mpeg4" if video_encoder() == "mpeg4" else "h264")
    assert [round(float(frame.mean())) for frame in frames] == pytest.approx(levels, abs=3)


def test_odd_sizes_are_padded_to_even(tmp_path: Path) -> None:
    path = tmp_path / "odd.mp4"
    image = np.zeros((47, 63, 3), np.uint8)
    image[:, -1] = 255  # the last column is repeated into the padding
    with VideoSink(path, fps=Fraction(30000, 1001), size=(63, 47)) as sink:
        for _ in range(3):
            sink.write(image)
    frames, stream = _read_back(path)
    assert len(frames) == 3
    assert frames[0].shape == (48, 64, 3)
    assert frames[0][:, -2:].mean() > 200
    assert stream.rate == Fraction(30000, 1001)


def test_the_file_appears_only_when_closed(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    sink = VideoSink(path, fps=29.97, size=(64, 48)).open()
    sink.write(_frame(100))
    assert not path.exists()
    assert len(list(tmp_path.iterdir())) == 1  # the hidden temporary file
    sink.close()
    assert list(tmp_path.iterdir()) == [path]
    assert len(_read_back(path)[0]) == 1


def test_an_exception_leaves_no_file_behind(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="boom"), VideoSink(path, 25, (64, 48)) as sink:
        sink.write(_frame(10))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_video_is_replaced_only_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    path.write_bytes(b"old")
    with pytest.raises(OutputError, match="exists"):
        VideoSink(path, 25, (64, 48)).open()
    assert path.read_bytes() == b"old"
    with VideoSink(path, 25, (64, 48), overwrite=True) as sink:
        sink.write(_frame(50))
    assert len(_read_back(path)[0]) == 1


def test_wrong_frames_and_paths_are_refused(tmp_path: Path) -> None:
    with VideoSink(tmp_path / "out.mp4", 25, (64, 48)) as sink:
        with pytest.raises(InputError, match=r"\(48, 64, 3\).*\(64, 48, 3\)"):
            sink.write(_frame(0, width=48, height=64))
        with pytest.raises(InputError, match="float32"):
            sink.write(_frame(0).astype(np.float32))
        sink.write(_frame(0))
    with pytest.raises(OutputError, match="extensions"):
        VideoSink(tmp_path / "out.gif", 25, (64, 48))
    with pytest.raises(OutputError, match="does not exist"):
        VideoSink(tmp_path / "no" / "out.mp4", 25, (64, 48)).open()
