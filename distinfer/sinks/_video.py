"""Writing RGB frames to a video file, committed atomically."""

from __future__ import annotations

import logging
import os
import uuid
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

from distinfer._errors import InputError, OutputError

if TYPE_CHECKING:  # PyAV loads on first use: a run without video never needs it
    import av

__all__ = ["VideoSink", "video_encoder"]

logger = logging.getLogger(__name__)

#: Encoders tried in order: H.264 plays everywhere; MPEG-4 part 2 is in every FFmpeg.
_ENCODER_PREFERENCE = ("libx264", "h264", "mpeg4")
_CONTAINER_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
# Encoder settings for speed (annotated video is written at inference rate on
# few cores) at a quality where boxes and text stay sharp.
_X264_OPTIONS = {"preset": "veryfast", "crf": "23"}
_MPEG4_QSCALE = 4


def video_encoder() -> str:
    """Name the encoder :class:`VideoSink` uses: ``libx264`` when available, else
    another H.264 encoder, else ``mpeg4``.

    >>> video_encoder()  # doctest: +SKIP
    'libx264'
    """
    import av

    for name in _ENCODER_PREFERENCE:
        try:
            return str(av.codec.Codec(name, "w").name)  # "h264" may resolve to another encoder
        except (av.error.FFmpegError, ValueError):  # UnknownCodecError is a ValueError
            continue
    raise OutputError("no video encoder available: PyAV's FFmpeg has neither H.264 nor MPEG-4")


class VideoSink:
    """Write RGB ``uint8`` frames, in the order given, to an MP4 (or MOV/MKV) file.

    The video is H.264 (``libx264``) when available, else MPEG-4 part 2, in yuv420p.
    Frames are written to a temporary file beside ``path`` and renamed into place
    by :meth:`close`, so ``path`` holds either nothing or a complete video; leaving
    the ``with`` block with an exception discards the partial file. yuv420p needs
    even dimensions: an odd width or height is padded by repeating the last column
    or row.

    >>> import numpy as np
    >>> with VideoSink("out.mp4", fps=25, size=(64, 48)) as sink:  # doctest: +SKIP
    ...     sink.write(np.zeros((48, 64, 3), np.uint8))
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float | Fraction,
        size: tuple[int, int],
        *,
        overwrite: bool = False,
        keyframe_interval: int | None = None,
    ) -> None:
        self.path = Path(path)
        if keyframe_interval is not None and keyframe_interval < 1:
            raise ValueError(f"keyframe_interval must be >= 1, got {keyframe_interval}")
        self.keyframe_interval = keyframe_interval
        width, height = size
        if width < 1 or height < 1:
            raise ValueError(f"size must be positive (width, height), got {size}")
        if not fps or fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        container_format = _CONTAINER_FORMATS.get(self.path.suffix.lower())
        if container_format is None:
            raise OutputError(
                f"cannot write video {self.path}: use one of the extensions "
                f"{', '.join(sorted(_CONTAINER_FORMATS))}"
            )
        self.size = (width, height)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.overwrite = overwrite
        self.frames_written = 0
        self._format = container_format
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._tmp_path: Path | None = None
        self._closed = False

    def open(self) -> VideoSink:
        """Create the temporary file and the encoder; called by ``__enter__``."""
        import av

        if self._container is not None or self._closed:
            raise RuntimeError("VideoSink.open() called twice")
        if self.path.exists() and not self.overwrite:
            raise OutputError(f"{self.path} exists; pass overwrite=True to replace it")
        folder = self.path.parent
        if not folder.is_dir():
            raise OutputError(f"cannot write {self.path}: folder {folder} does not exist")
        # A unique hidden name beside the target: the rename stays on one file system.
        tmp = folder / f".{self.path.stem}.{uuid.uuid4().hex[:12]}.tmp{self.path.suffix}"
        self._tmp_path = tmp
        try:
            container = av.open(str(tmp), mode="w", format=self._format)
            encoder = video_encoder()
            stream = container.add_stream(encoder, rate=self.fps)
            stream.width = self.size[0] + self.size[0] % 2
            stream.height = self.size[1] + self.size[1] % 2
            stream.pix_fmt = "yuv420p"
            stream.codec_context.time_base = 1 / self.fps
            if encoder == "libx264":
                stream.options = dict(_X264_OPTIONS)
            elif encoder == "mpeg4":
                stream.codec_context.qscale = _MPEG4_QSCALE
            if self.keyframe_interval is not None:
                stream.codec_context.gop_size = self.keyframe_interval
            # Open now so an empty video is still a valid file.
            container.start_encoding()
        except (av.error.FFmpegError, OSError) as exc:
            self._discard()
            raise OutputError(f"cannot write video {self.path}: {exc}") from exc
        self._container, self._stream = container, stream
        logger.debug("writing %s with %s at %s fps", self.path, encoder, self.fps)
        return self

    def write(self, frame: np.ndarray) -> None:
        """Encode one HxWx3 RGB ``uint8`` frame (``H, W`` as given in ``size``)."""
        import av

        if self._container is None or self._stream is None:
            raise RuntimeError("VideoSink is not open: use it in a with block or call open()")
        width, height = self.size
        if (
            not isinstance(frame, np.ndarray)
            or frame.dtype != np.uint8
            or frame.shape != (height, width, 3)
        ):
            got = (
                f"{frame.dtype} {frame.shape}"
                if isinstance(frame, np.ndarray)
                else type(frame).__name__
            )
            raise InputError(
                f"VideoSink expects uint8 frames of shape {(height, width, 3)}, got {got}"
            )
        if width % 2 or height % 2:
            frame = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video_frame.pts = self.frames_written
        video_frame.time_base = self._stream.codec_context.time_base
        try:
            self._container.mux(self._stream.encode(video_frame))
        except av.error.FFmpegError as exc:
            raise OutputError(f"cannot write video {self.path}: {exc}") from exc
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder, finish the file and rename it into place."""
        import av

        if self._closed:
            return
        if self._container is None or self._stream is None or self._tmp_path is None:
            raise RuntimeError("VideoSink is not open")
        try:
            self._container.mux(self._stream.encode(None))
            self._container.close()
        except av.error.FFmpegError as exc:
            self.abort()
            raise OutputError(f"cannot finish video {self.path}: {exc}") from exc
        self._closed = True
        if self.path.exists() and not self.overwrite:
            self._discard()
            raise OutputError(f"{self.path} appeared while writing; not replaced")
        os.replace(self._tmp_path, self.path)
        self._tmp_path = None
        logger.info("wrote %d frames to %s", self.frames_written, self.path)

    def abort(self) -> None:
        """Stop writing and delete the partial file; ``path`` is left untouched."""
        import av

        if self._container is not None and not self._closed:
            try:
                self._container.close()
            except av.error.FFmpegError:
                logger.debug("ignoring error while closing an aborted video", exc_info=True)
        self._closed = True
        self._discard()

    def _discard(self) -> None:
        if self._tmp_path is not None:
            self._tmp_path.unlink(missing_ok=True)
            self._tmp_path = None

    def __enter__(self) -> VideoSink:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
