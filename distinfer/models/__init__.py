"""Model tasks: what runs on the engine, and how models and deployment folders become tasks.

>>> from distinfer.models import task_from_model
>>> task = task_from_model("detector.xml")   # doctest: +SKIP
>>> task.kind                                # doctest: +SKIP
'detection'

Names load on first use: the table of bundled models (``BUNDLED_MODELS``) is read by
the config without loading OpenVINO.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes

if TYPE_CHECKING:
    from ._bundled import BUNDLED_MODELS
    from ._chain import ChainTask
    from ._model_api import ModelApiTask
    from ._raw import RawTask
    from ._registry import TASK_TYPES, load_folder, save_folder, task_from_config, task_from_model
    from ._task import InferFn, Task, infer_all, predict_each

_LAZY = {
    "BUNDLED_MODELS": "._bundled",
    "ChainTask": "._chain",
    "InferFn": "._task",
    "ModelApiTask": "._model_api",
    "RawTask": "._raw",
    "TASK_TYPES": "._registry",
    "Task": "._task",
    "infer_all": "._task",
    "load_folder": "._registry",
    "predict_each": "._task",
    "save_folder": "._registry",
    "task_from_config": "._registry",
    "task_from_model": "._registry",
}

__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "BUNDLED_MODELS",
    "TASK_TYPES",
    "ChainTask",
    "InferFn",
    "ModelApiTask",
    "RawTask",
    "Task",
    "infer_all",
    "load_folder",
    "predict_each",
    "save_folder",
    "task_from_config",
    "task_from_model",
]
