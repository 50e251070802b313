"""``distinfer init``: a commented job file to start from, shipped inside the package."""

from __future__ import annotations

STARTER = """\
# A distinfer job. Relative paths are relative to this file's folder.
# Every key: docs/config.md. Check it with `distinfer validate`, run it with
# `distinfer run`.
model:
  name: ppocr-det             # a bundled model (ppocr, ppocr-det, ppocr-cls), or instead:
  # path: models/detector.xml #   .xml .onnx .tflite .pdmodel, or a deployment folder
  # task: detection           #   default: the model's rt_info (Geti/OTX exports set it)
  # labels: [cat, dog]        #   default: the model's
input:
  images: images/             # a folder, a glob (pages/**/*.jpg), .tar/.tar.gz/.zip,
                              #   a .txt/.csv/.parquet list, or s3://bucket/prefix/
  # videos: clips/*.mp4       # video files (split at keyframes, decoded frame-exactly)
output:
  parquet: out/results        # Parquet parts + _manifest.json (or s3://bucket/results)
  # overlays: out/overlays    # one annotated JPEG per image
  # video: out/annotated.mp4  # the input video with its predictions drawn
cluster:
  address: null               # null: an embedded local Ray; auto or host:port: a cluster
"""
