"""Output sinks: the Parquet results dataset (``_parquet``), annotated video (``_video``),
and exports of a results folder to COCO, JSON Lines and CSV (``_export``, ``_coco``,
read back by ``_reader``)."""

from distinfer.sinks._export import FORMATS, ExportSummary, export_results
from distinfer.sinks._parquet import ParquetSink, prepare_output, read_manifest, read_results
from distinfer.sinks._reader import ResultsFolder, open_results
from distinfer.sinks._video import VideoSink, video_encoder

__all__ = [
    "FORMATS",
    "ExportSummary",
    "ParquetSink",
    "ResultsFolder",
    "VideoSink",
    "export_results",
    "open_results",
    "prepare_output",
    "read_manifest",
    "read_results",
    "video_encoder",
]
