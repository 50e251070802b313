"""Output sinks: the Parquet results dataset (``_parquet``) and annotated video (``_video``)."""

from distinfer.sinks._parquet import ParquetSink, prepare_output, read_manifest, read_results
from distinfer.sinks._video import VideoSink, video_encoder

__all__ = [
    "ParquetSink",
    "VideoSink",
    "prepare_output",
    "read_manifest",
    "read_results",
    "video_encoder",
]
