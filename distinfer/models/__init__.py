"""Model tasks: what runs on the engine, and how models and deployment folders become tasks.

>>> from distinfer.models import task_from_model
>>> task = task_from_model("detector.xml")   # doctest: +SKIP
>>> task.kind                                # doctest: +SKIP
'detection'
"""

from ._chain import BatchTask, ChainTask
from ._model_api import ModelApiTask
from ._raw import RawTask
from ._registry import (
    BUNDLED,
    TASK_TYPES,
    load_folder,
    save_folder,
    task_from_config,
    task_from_model,
)
from ._task import InferFn, PredictsMany, Task

__all__ = [
    "BUNDLED",
    "TASK_TYPES",
    "BatchTask",
    "ChainTask",
    "InferFn",
    "ModelApiTask",
    "PredictsMany",
    "RawTask",
    "Task",
    "load_folder",
    "save_folder",
    "task_from_config",
    "task_from_model",
]
