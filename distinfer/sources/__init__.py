"""Input sources: image files, archives and lists (``_images``), and videos (``_video``)."""

from distinfer.sources._images import (
    DEFAULT_MAX_FILE_BYTES,
    IMAGE_EXTENSIONS,
    ArchiveCache,
    ImageRef,
    iter_images,
    read_bytes,
    safe_relpath,
)
from distinfer.sources._video import (
    VideoInfo,
    VideoSegment,
    plan_segments,
    probe,
    read_segment,
    whole_video,
)

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "IMAGE_EXTENSIONS",
    "ArchiveCache",
    "ImageRef",
    "VideoInfo",
    "VideoSegment",
    "iter_images",
    "plan_segments",
    "probe",
    "read_bytes",
    "read_segment",
    "safe_relpath",
    "whole_video",
]
