"""Which task runs a model: task kinds, model files, bundled names, deployment folders.

A distinfer deployment folder holds the model files and ``distinfer.json``::

    {"format": "distinfer-deployment", "version": 1,
     "task": {"kind": "detection", "model": "model.xml", ...}}

where ``task`` is what the task's ``save`` returned and its ``load`` takes.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from .._errors import ConfigError, ModelError, OutputError
from ._bundled import BUNDLED_MODELS
from ._chain import ChainTask
from ._geti import geti_deployment_dir, load_geti_folder
from ._model_api import MODEL_TYPES, ModelApiTask, kind_of_model_type, read_model_info
from ._raw import RawTask
from ._task import Task

logger = logging.getLogger(__name__)

CONFIG_FILE = "distinfer.json"
FORMAT = "distinfer-deployment"
VERSION = 1


class _Loadable(Protocol):
    @classmethod
    def load(cls, folder: Path, config: Mapping[str, Any]) -> Task: ...


#: Task kinds by name: what ``task=`` accepts and what ``distinfer.json`` records
#: (the bundled PP-OCR kinds are added from ``distinfer.models.ppocr`` when needed;
#: a ``chain`` is two of these, loaded by ``task_from_config`` itself).
TASK_TYPES: dict[str, type[_Loadable]] = {
    "raw": RawTask,
    "classification": ModelApiTask,
    "detection": ModelApiTask,
    "segmentation": ModelApiTask,
    "instance_segmentation": ModelApiTask,
}
#: The kinds one model file can be run as (``chain`` needs two models: a folder).
MODEL_TASKS = ("raw", *MODEL_TYPES)


def _task_types() -> dict[str, type[_Loadable]]:
    from .ppocr import TASKS  # imported when needed: the bundled models need rapidocr

    return {**TASK_TYPES, **TASKS}


def task_from_config(folder: Path, config: Mapping[str, Any]) -> Task:
    """The task a ``save`` config describes, its model files in ``folder``."""
    kind = config.get("kind")
    if kind == ChainTask.kind:  # two tasks, each in its own subfolder
        return ChainTask(
            task_from_config(folder / "detector", config["detector"]),
            task_from_config(folder / "classifier", config["classifier"]),
        )
    types = TASK_TYPES if kind in TASK_TYPES else _task_types()
    if kind not in types:
        raise ModelError(
            f"{folder}: unknown task kind {kind!r} in {CONFIG_FILE} "
            f"(known: {', '.join(sorted([*types, ChainTask.kind]))})"
        )
    return types[kind].load(folder, config)


def task_from_model(
    model: str | os.PathLike[str],
    task: str | None = None,
    labels: Sequence[str] | None = None,
    **options: Any,
) -> Task:
    """The task for a model file, a deployment folder or a bundled model name.

    ``task`` is one of ``raw``, ``classification``, ``detection``,
    ``segmentation``, ``instance_segmentation``; left out, it comes from the
    model's ``rt_info/model_info/model_type`` (Geti/OTX exports set it).
    ``labels`` override the model's; ``options`` go to the task (model_api
    parameters such as ``confidence_threshold``, or the ``raw`` task's
    ``size``/``mean``/``scale``/``layout``/``color``).

    >>> task_from_model("ppocr-det").kind                        # doctest: +SKIP
    'ppocr-det'
    >>> task_from_model("model.xml", labels=["cat", "dog"]).kind  # doctest: +SKIP
    'detection'
    >>> task_from_model("model.onnx", task="raw").kind            # doctest: +SKIP
    'raw'
    """
    if isinstance(model, str) and model in BUNDLED_MODELS and not Path(model).exists():
        if task not in (None, model) or labels is not None or options:
            raise ConfigError(
                f"the bundled model {model!r} takes no task, labels or options", key="model"
            )
        from .ppocr import bundled  # needs rapidocr: imported only for bundled names

        return bundled(model)
    path = Path(model)
    if path.is_dir():
        if task is not None or labels is not None or options:
            raise ConfigError(
                f"{path}: a deployment folder carries its own task; "
                "give no task, labels or options",
                key="model",
            )
        return load_folder(path)
    if not path.suffix and not path.exists():
        raise ModelError(
            f"{path}: no such model file or folder, and not a bundled model "
            f"({', '.join(BUNDLED_MODELS)})"
        )
    if task is None:
        model_type = read_model_info(path).get("model_type")
        task = kind_of_model_type(model_type) if model_type else None
        if task is None:
            found = (
                f"model type {model_type!r} is not supported"
                if model_type
                else ("its rt_info has no model_info/model_type")
            )
            raise ModelError(
                f"{path}: cannot tell which task runs this model ({found}); "
                f"give task= one of {', '.join(MODEL_TASKS)}"
            )
        options.setdefault("model_type", model_type)
    if task == "raw":
        if labels is not None:
            raise ConfigError("the raw task takes no labels", key="labels")
        return RawTask(path, **options)
    if task in MODEL_TYPES:
        return ModelApiTask(path, kind=task, labels=labels, **options)
    raise ConfigError(
        f"unknown task {task!r} (choose from {', '.join(MODEL_TASKS)}; "
        f"bundled models: {', '.join(BUNDLED_MODELS)})",
        key="task",
    )


def load_folder(folder: str | os.PathLike[str]) -> Task:
    """The task of a deployment folder: distinfer's own (``distinfer.json``) or the
    Geti SDK's (``deployment/project.json``).

    >>> task = load_folder("exported/")   # doctest: +SKIP
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"{folder}: deployment folder not found")
    config_file = folder / CONFIG_FILE
    if config_file.is_file():
        try:
            document = json.loads(config_file.read_text())
            format_, version, config = document["format"], document["version"], document["task"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{config_file}: unreadable deployment file: {exc}") from exc
        if format_ != FORMAT or version != VERSION:
            raise ModelError(
                f"{config_file}: unsupported deployment format {format_!r} version {version!r} "
                f"(this distinfer reads {FORMAT!r} version {VERSION})"
            )
        return task_from_config(folder, config)
    if geti_deployment_dir(folder) is not None:
        return load_geti_folder(folder)
    raise ModelError(
        f"{folder}: not a deployment folder (no {CONFIG_FILE}, no deployment/project.json)"
    )


def save_folder(task: Task, folder: str | os.PathLike[str]) -> Path:
    """Write ``task`` as a distinfer deployment folder that ``load_folder`` reads back.

    ``folder`` must not exist or be empty. Returns it.

    >>> save_folder(task, "exported/")   # doctest: +SKIP
    PosixPath('exported')
    """
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise OutputError(f"{folder}: exists and is not an empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    document = {"format": FORMAT, "version": VERSION, "task": task.save(folder)}
    partial = folder / (CONFIG_FILE + ".partial")
    partial.write_text(json.dumps(document, indent=2) + "\n")
    partial.replace(folder / CONFIG_FILE)  # written last: a folder with it is complete
    logger.info("saved %s task to %s", task.kind, folder)
    return folder
