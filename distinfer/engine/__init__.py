"""The in-process engine: models compiled with async infer requests, and the API around them.

- ``_engine``: ``Engine``, the compiled stages of a task with pools of OpenVINO async
  requests, host threads for decoding and post-processing, backpressure.
- ``_decode``: bytes or arrays to RGB pixels, reduced JPEG decoding, size limits.
- ``_prediction``: ``Prediction`` and ``Annotation``, and the result schema.
- ``_overlay``: drawing a prediction on its image.
- ``_deployment``, ``_video_processor``: the Geti SDK's ``Deployment`` API and
  ``AsyncVideoProcessor``.

Nothing is imported here: a process that needs only the result types (the collector)
never loads OpenVINO.
"""
