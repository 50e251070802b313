"""Frame-exact parallel video decoding with PyAV.

OpenCV's ``CAP_PROP_POS_FRAMES`` seek is not frame-exact with B-frames or a variable
frame rate, so frames are numbered from the container's own timestamps instead:

1. :func:`probe` demuxes the packets once (no decoding) and records every frame's
   presentation timestamp (pts) and which frames are keyframes. Frame ``n`` is the
   frame with the ``n``-th smallest pts.
2. :func:`plan_segments` cuts the frame range at keyframes into
   :class:`VideoSegment` work units, each carrying the pts of its own frames.
3. :func:`read_segment`, on any worker, seeks to the segment's keyframe, decodes
   forward and yields exactly the segment's frames, matched by pts. It decodes past
   the next keyframe when needed: with open GOPs, B-frames shown before a keyframe
   are stored after it.

A video on object storage (a :class:`~distinfer.storage.Location`) is read by
PyAV through a ranged reader: :func:`probe` reads the file once, streaming, in
blocks of ``VIDEO_BLOCK_BYTES``; :func:`read_segment` fetches the container's
index and the blocks its own frames are in, never the whole file.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from distinfer._errors import InputError, StorageError, StorageUnavailableError
from distinfer.storage import Location

if TYPE_CHECKING:  # PyAV loads on first use: a run without video never needs it
    import av

__all__ = ["VideoInfo", "VideoSegment", "plan_segments", "probe", "read_segment", "whole_video"]

logger = logging.getLogger(__name__)

#: A video on object storage is read in ranged GETs of this size.
VIDEO_BLOCK_BYTES = 1 << 20


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learns about a video's first video stream.

    ``pts`` lists every frame's presentation timestamp (in ``time_base`` units)
    sorted, so frame ``n`` has timestamp ``pts[n]``; ``keyframes`` lists the frame
    numbers of keyframes, ascending, starting with 0.
    """

    path: str
    fps: float
    width: int
    height: int
    frame_count: int
    pts: tuple[int, ...]
    keyframes: tuple[int, ...]
    time_base: Fraction = Fraction(1)

    def __post_init__(self) -> None:
        if self.frame_count != len(self.pts):
            raise ValueError(f"frame_count {self.frame_count} != {len(self.pts)} timestamps")
        if not self.keyframes or self.keyframes[0] != 0:
            raise ValueError("the first frame must be a keyframe")


@dataclass(frozen=True)
class VideoSegment:
    """Frames ``[start_frame, end_frame)`` of a video, decodable from one keyframe.

    ``seek_pts`` is the keyframe's timestamp; ``pts`` the timestamps of the
    segment's own frames (``pts[i]`` is frame ``start_frame + i``), so a worker
    needs nothing else to number the frames it decodes.
    """

    index: int
    start_frame: int
    end_frame: int
    seek_pts: int
    pts: tuple[int, ...]

    def __post_init__(self) -> None:
        if not 0 <= self.start_frame < self.end_frame:
            raise ValueError(
                f"empty or negative frame range [{self.start_frame}, {self.end_frame})"
            )
        if len(self.pts) != self.end_frame - self.start_frame:
            raise ValueError("a segment needs one timestamp per frame")

    @property
    def frame_count(self) -> int:
        return self.end_frame - self.start_frame


def probe(path: str | os.PathLike[str] | Location) -> VideoInfo:
    """Demux a video once (no decoding) to number its frames and find its keyframes.

    ``path`` is a local path or a :class:`~distinfer.storage.Location`; on object
    storage every packet is demuxed from a stream of ranged reads (the file is read
    once, in bounded memory).

    Raises :class:`~distinfer.InputError` for a missing file, a file that is not a
    video, a truncated file (MP4 cut before its index, or holding fewer frames
    than its index lists) and a video without frames.

    >>> info = probe("clip.mp4")  # doctest: +SKIP
    >>> info.frame_count, info.fps, info.keyframes[:3]  # doctest: +SKIP
    (96, 25.0, (0, 12, 24))
    """
    import av

    name = _name(path)
    with _open(path) as container:
        if not container.streams.video:
            kinds = sorted({stream.type for stream in container.streams}) or ["none"]
            raise InputError(f"no video stream in {name} (streams: {', '.join(kinds)})")
        stream = container.streams.video[0]
        declared = stream.frames  # from the container index; 0 when unknown
        timestamps: list[int] = []
        keyframe_pts: list[int] = []
        try:
            for packet in container.demux(stream):
                if packet.size == 0 or packet.is_discard:
                    continue  # end-of-stream marker; frames hidden by an edit list
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None:
                    raise InputError(f"{name}: packets without timestamps; cannot number frames")
                timestamps.append(ts)
                if packet.is_keyframe:
                    keyframe_pts.append(ts)
        except av.error.FFmpegError as exc:
            raise InputError(
                f"{name} is truncated or corrupt after {len(timestamps)} frames: {exc}"
            ) from exc
        if not timestamps:
            raise InputError(f"video has no frames: {name}")
        if declared and len(timestamps) < declared:
            raise InputError(
                f"{name} is truncated: its index lists {declared} frames but only "
                f"{len(timestamps)} are present (file cut while being written or copied?)"
            )
        timestamps.sort()
        if len(set(timestamps)) != len(timestamps):
            raise InputError(f"{name}: several frames share a timestamp; cannot number frames")
        keyframe_pts.sort()
        if not keyframe_pts or keyframe_pts[0] != timestamps[0]:
            # Decoding can only start at a keyframe; frames before the first one
            # (a stream cut mid-GOP) are undecodable: start numbering at it.
            if not keyframe_pts:
                raise InputError(f"{name}: no keyframe; the video cannot be decoded")
            dropped = bisect.bisect_left(timestamps, keyframe_pts[0])
            logger.warning("%s: skipping %d frames before the first keyframe", name, dropped)
            timestamps = timestamps[dropped:]
        keyframes = tuple(bisect.bisect_left(timestamps, ts) for ts in keyframe_pts)
        return VideoInfo(
            path=name,
            fps=_fps(stream, timestamps),
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            frame_count=len(timestamps),
            pts=tuple(timestamps),
            keyframes=keyframes,
            time_base=Fraction(stream.time_base or 1),
        )


def plan_segments(info: VideoInfo, frames_per_segment: int) -> list[VideoSegment]:
    """Cut a video into segments of about ``frames_per_segment`` frames, at keyframes.

    A segment ends at the first keyframe at or after ``frames_per_segment`` frames
    from its start, so segments are never shorter than that (except the last) and
    may be longer when keyframes are sparse; a video with one keyframe is one
    segment.

    >>> info = VideoInfo("v.mp4", 25.0, 64, 48, 6, (0, 1, 2, 3, 4, 5), (0, 2, 4))
    >>> [(s.start_frame, s.end_frame) for s in plan_segments(info, 2)]
    [(0, 2), (2, 4), (4, 6)]
    """
    if frames_per_segment < 1:
        raise ValueError(f"frames_per_segment must be >= 1, got {frames_per_segment}")
    starts = [0]
    for keyframe in info.keyframes:
        if keyframe - starts[-1] >= frames_per_segment:
            starts.append(keyframe)
    ends = [*starts[1:], info.frame_count]
    return [
        VideoSegment(
            index=index,
            start_frame=start,
            end_frame=end,
            seek_pts=info.pts[start],
            pts=info.pts[start:end],
        )
        for index, (start, end) in enumerate(zip(starts, ends, strict=True))
    ]


def whole_video(info: VideoInfo) -> VideoSegment:
    """One segment holding every frame of the video, decoded from the start.

    >>> info = VideoInfo("v.mp4", 25.0, 64, 48, 3, (0, 1, 2), (0,))
    >>> segment = whole_video(info)
    >>> segment.start_frame, segment.end_frame
    (0, 3)
    """
    return VideoSegment(
        index=0, start_frame=0, end_frame=info.frame_count, seek_pts=info.pts[0], pts=info.pts
    )


def read_segment(
    path: str | os.PathLike[str] | Location, segment: VideoSegment
) -> Iterator[tuple[int, np.ndarray]]:
    """Decode one segment, yielding ``(frame_number, RGB HWC uint8 array)`` in order.

    Yields exactly the frames ``segment.start_frame`` .. ``segment.end_frame - 1``,
    each once. Raises :class:`~distinfer.InputError` when the file cannot be read or
    some of the segment's frames cannot be decoded. On object storage only the
    container's index and the bytes from the segment's keyframe on are fetched.

    >>> info = probe("clip.mp4")  # doctest: +SKIP
    >>> for segment in plan_segments(info, 48):  # doctest: +SKIP
    ...     for number, rgb in read_segment("clip.mp4", segment):
    ...         ...
    """
    name = _name(path)
    emitted = 0
    # Seek to the segment's keyframe. Should the demuxer land after it (it should
    # not), nothing has been yielded yet: decode from the start of the file instead.
    for use_seek in (True, False):
        for number, rgb in _decode_segment(path, segment, use_seek):
            yield number, rgb
            emitted += 1
        if emitted == segment.frame_count:
            return
        if emitted:
            break
        logger.warning(
            "%s: seeking did not reach frame %d; decoding from the start",
            name,
            segment.start_frame,
        )
    raise InputError(
        f"{name}: decoded only {emitted} of the {segment.frame_count} frames in "
        f"[{segment.start_frame}, {segment.end_frame}); the file is corrupt or truncated"
    )


def _decode_segment(
    path: str | os.PathLike[str] | Location, segment: VideoSegment, use_seek: bool
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield the segment's frames in order; stop early at an overshoot, raise at a gap."""
    import av

    name = _name(path)
    expected = 0
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        if use_seek:
            try:
                container.seek(segment.seek_pts, stream=stream, backward=True, any_frame=False)
            except av.error.FFmpegError as exc:
                logger.debug("%s: seek to pts %d failed: %s", name, segment.seek_pts, exc)
                return  # the caller falls back to decoding from the start
        try:
            for frame in container.decode(stream):
                ts = frame.pts
                if ts is None or ts < segment.pts[expected]:
                    continue  # before the segment, or leading frames of an open GOP
                if ts > segment.pts[expected]:
                    if expected:
                        raise InputError(
                            f"{name}: frame {segment.start_frame + expected} (pts "
                            f"{segment.pts[expected]}) is missing from the decoded stream"
                        )
                    return  # seek overshot
                yield (
                    segment.start_frame + expected,
                    np.ascontiguousarray(frame.to_ndarray(format="rgb24")),
                )
                expected += 1
                if expected == segment.frame_count:
                    return
        except av.error.FFmpegError as exc:
            raise InputError(
                f"{name}: decoding failed in frames [{segment.start_frame}, "
                f"{segment.end_frame}) after {expected} frames: {exc}"
            ) from exc


def _name(path: str | os.PathLike[str] | Location) -> str:
    return path.uri if isinstance(path, Location) else os.fspath(path)


@contextlib.contextmanager
def _open(path: str | os.PathLike[str] | Location) -> Iterator[av.container.InputContainer]:
    """The video opened for reading: a local file, or an object through a ranged reader."""
    if isinstance(path, Location) and not path.is_local:
        with _open_object(path) as container:
            yield container
        return
    name = path.path if isinstance(path, Location) else os.fspath(path)
    if not os.path.exists(name):
        raise InputError(f"video not found: {name}")
    if os.path.isdir(name):
        raise InputError(f"is a directory, not a video: {name}")
    size = os.path.getsize(name)
    if size == 0:
        raise InputError(f"empty file (0 bytes): {name}")
    with _container(name, size, name) as container:
        yield container


@contextlib.contextmanager
def _open_object(location: Location) -> Iterator[av.container.InputContainer]:
    uri = location.uri
    try:
        reader = location.fs.open(location.path, block_size=VIDEO_BLOCK_BYTES)
    except StorageUnavailableError:
        raise
    except FileNotFoundError:
        raise InputError(f"video not found: {uri}") from None
    except (OSError, StorageError) as exc:
        raise InputError(f"cannot open video {uri}: {exc}") from exc
    with reader:
        size = reader.seek(0, os.SEEK_END)
        reader.seek(0)
        if size == 0:
            raise InputError(f"empty file (0 bytes): {uri}")
        with _container(reader, size, uri) as container:
            yield container


@contextlib.contextmanager
def _container(
    source: BinaryIO | str, size: int, name: str
) -> Iterator[av.container.InputContainer]:
    """PyAV's container on a local path (FFmpeg reads it) or a file object."""
    import av

    try:
        container = av.open(source, mode="r")
    except av.error.PermissionError as exc:
        raise InputError(f"permission denied: {name}") from exc
    except av.error.FFmpegError as exc:
        if isinstance(source, str):
            with open(source, "rb") as f:
                reason = _mp4_problem(f, size)
        else:
            reason = _mp4_problem(source, size)
        raise InputError(f"cannot open video {name}: {reason or exc}") from exc
    with container:
        yield container


def _mp4_problem(f: BinaryIO, size: int) -> str | None:
    """Explain why an MP4/MOV file of ``size`` bytes cannot be opened, from its boxes."""
    f.seek(0)
    head = f.read(8)
    if head[4:8] != b"ftyp":
        return None
    pos = 0
    boxes: list[bytes] = []
    while pos + 8 <= size:
        f.seek(pos)
        header = f.read(16)
        box_size, box_type = struct.unpack(">I4s", header[:8])
        if box_size == 1 and len(header) == 16:
            (box_size,) = struct.unpack(">Q", header[8:16])
        elif box_size == 0:
            box_size = size - pos
        if box_size < 8:
            return "corrupt MP4 box structure"
        boxes.append(box_type)
        if pos + box_size > size:
            return (
                f"MP4 is truncated: its '{box_type.decode('latin-1')}' box runs past the "
                "end of the file (cut while being written or copied?)"
            )
        pos += box_size
    if b"moov" not in boxes:
        return "MP4 has no 'moov' index: the file is truncated or was never finalized"
    return None


def _fps(stream: av.video.stream.VideoStream, timestamps: list[int]) -> float:
    rate = stream.average_rate or stream.guessed_rate
    if rate:
        return float(rate)
    if len(timestamps) > 1 and stream.time_base:
        span = float((timestamps[-1] - timestamps[0]) * stream.time_base)
        if span > 0:
            return (len(timestamps) - 1) / span
    return 0.0
