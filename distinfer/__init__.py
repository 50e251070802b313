"""distinfer: Ray-distributed inference for OpenVINO models over images and videos.

In-process, the Geti SDK's deployment API::

    from distinfer import Deployment
    deployment = Deployment.from_model("ppocr")
    deployment.load_inference_models()
    print(deployment.infer(rgb_image).text)

Distributed, from a YAML job file: ``distinfer run config.yaml`` or
``distinfer.run(RunConfig.load("config.yaml"))``.
"""

from typing import TYPE_CHECKING

from ._errors import (
    ActorDiedError,
    ConfigError,
    DistinferError,
    InferenceError,
    InputError,
    ModelError,
    OutputError,
    StorageError,
    WorkerError,
)
from ._lazy import lazy_attributes

if TYPE_CHECKING:
    from ._config import RunConfig
    from .distributed._driver import run
    from .distributed._summary import RunSummary
    from .engine._annotation import Annotation
    from .engine._deployment import Deployment
    from .engine._overlay import draw_prediction
    from .engine._prediction import RESULT_SCHEMA, Prediction
    from .engine._video_processor import AsyncVideoProcessor
    from .sinks._parquet import read_results

# Everything loads on first use: a Ray collector process imports
# ``distinfer.distributed._collector`` without OpenVINO, an inference actor without pydantic's
# config models it does not use, and ``distinfer --help`` stays quick.
_LAZY = {
    "Annotation": ".engine._annotation",
    "AsyncVideoProcessor": ".engine._video_processor",
    "Deployment": ".engine._deployment",
    "Prediction": ".engine._prediction",
    "RESULT_SCHEMA": ".engine._prediction",
    "RunConfig": "._config",
    "RunSummary": ".distributed._summary",
    "draw_prediction": ".engine._overlay",
    "read_results": ".sinks._parquet",
    "run": ".distributed._driver",
}

__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
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
    "RESULT_SCHEMA",
    "RunConfig",
    "RunSummary",
    "StorageError",
    "WorkerError",
    "draw_prediction",
    "read_results",
    "run",
]
