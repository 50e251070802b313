"""Input sources: image files (``_images``), archives (``_archives``) and lists (``_lists``)
of them, referenced by ``_refs``; and videos (``_video``)."""

from distinfer.sources._archives import ArchiveCache
from distinfer.sources._images import iter_images, read_bytes
from distinfer.sources._refs import (
    DEFAULT_MAX_FILE_BYTES,
    IMAGE_EXTENSIONS,
    ImageRef,
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
