"""distinfer: Ray-distributed inference for OpenVINO models over images and videos.

In-process, the Geti SDK's deployment API::

    from distinfer import Deployment
    deployment = Deployment.from_model("ppocr")
    deployment.load_inference_models()
    print(deployment.infer(rgb_image).text)

Distributed, from a YAML job file: ``distinfer run config.yaml`` or
``distinfer.run(RunConfig.load("config.yaml"))``.
"""

from ._config import RunConfig
from ._deployment import Deployment
from ._driver import RunSummary, run
from ._errors import (
    ActorDiedError,
    ConfigError,
    DistinferError,
    InferenceError,
    InputError,
    ModelError,
    OutputError,
    WorkerError,
)
from ._overlay import draw_prediction
from ._prediction import RESULT_SCHEMA, Annotation, Prediction
from ._video_processor import AsyncVideoProcessor
from .sinks._parquet import read_results

__all__ = [
    "RESULT_SCHEMA",
    "ActorDiedError",
    "Annotation",
    "AsyncVideoProcessor",
    "ConfigError",
    "Deployment",
    "DistinferError",
    "InferenceError",
    "InputError",
    "ModelError",
    "OutputError",
    "Prediction",
    "RunConfig",
    "RunSummary",
    "WorkerError",
    "draw_prediction",
    "read_results",
    "run",
]
