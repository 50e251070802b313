"""Reading a deployment folder as the Geti SDK's ``Deployment.save`` writes it.

The layout, as read from the Geti SDK (github.com/open-edge-platform/geti-sdk,
formerly openvinotoolkit/geti-sdk; checked at commit 160a4f1, April 2026):
geti_sdk/deployment/deployment.py ``Deployment.save``/``from_folder`` and
geti_sdk/deployment/deployed_model.py ``DeployedModel.save``/``get_data``::

    <folder>/deployment/                 (or <folder> itself when it is that folder)
        project.json                     the project: pipeline.tasks (title, task_type,
                                         labels), pipeline.connections
        hook_config.json                 optional post-inference hooks (ignored here)
        <task title>/                    one per trainable task, in pipeline order
            model.json                   model details (ignored here)
            hyper_parameters.json        optional (ignored here)
            model/model.xml, model.bin   the OpenVINO IR; rt_info/model_info carries
                                         model_type, labels, thresholds
            model/config.json            export configuration (ignored here)
            python/                      optional model wrappers (ignored here)

One trainable task gives a ``ModelApiTask``; detection followed by
classification gives a ``ChainTask``, as the Geti SDK runs such a project.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._errors import ModelError
from ._chain import ChainTask
from ._model_api import MODEL_TYPES, ModelApiTask, read_model_info
from ._task import Task

logger = logging.getLogger(__name__)

#: Geti task types that are not models.
_NOT_TRAINABLE = ("dataset", "crop")
PROJECT_FILE = "project.json"


def geti_deployment_dir(folder: Path) -> Path | None:
    """The ``deployment`` folder holding ``project.json`` in or at ``folder``, or None."""
    for candidate in (folder / "deployment", folder):
        if (candidate / PROJECT_FILE).is_file():
            return candidate
    return None


def _model_file(task_dir: Path) -> Path:
    # DeployedModel.get_data: the IR is in <task>/model/, or directly in <task>/.
    for candidate in (task_dir / "model" / "model.xml", task_dir / "model.xml"):
        if candidate.is_file():
            return candidate
    raise ModelError(f"{task_dir}: no model/model.xml (a Geti deployment task folder)")


def _labels(task: Mapping[str, Any]) -> list[str]:
    return [
        str(label["name"]) for label in task.get("labels") or () if not label.get("is_empty", False)
    ]


def _task(task_dir: Path, task: Mapping[str, Any]) -> ModelApiTask:
    kind = str(task.get("task_type", "")).lower()
    if kind not in MODEL_TYPES:
        raise ModelError(
            f"{task_dir}: Geti task type {kind!r} is not supported "
            f"(supported: {', '.join(MODEL_TYPES)})"
        )
    path = _model_file(task_dir)
    labels = None
    if not read_model_info(path).get("labels"):
        # Older exports: the project knows the labels (their order is the model's).
        labels = _labels(task) or None
        if labels:
            logger.warning("%s: rt_info has no labels; using the project's: %s", path, labels)
    return ModelApiTask(path, kind=kind, labels=labels)


def load_geti_folder(folder: Path) -> Task:
    """A task (or a detection -> classification chain) from a Geti SDK deployment folder.

    >>> task = load_geti_folder(Path("my_project"))  # doctest: +SKIP
    >>> task.kind                                     # doctest: +SKIP
    'chain'
    """
    deployment = geti_deployment_dir(folder)
    if deployment is None:
        raise ModelError(f"{folder}: not a Geti deployment (no deployment/{PROJECT_FILE})")
    try:
        project = json.loads((deployment / PROJECT_FILE).read_text())
        tasks: Sequence[Mapping[str, Any]] = project["pipeline"]["tasks"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{deployment / PROJECT_FILE}: unreadable Geti project: {exc}") from exc
    trainable = [t for t in tasks if str(t.get("task_type", "")).lower() not in _NOT_TRAINABLE]
    models = [_task(deployment / str(t["title"]), t) for t in trainable]
    if len(models) == 1:
        return models[0]
    kinds = [m.kind for m in models]
    if kinds == ["detection", "classification"]:
        return ChainTask(models[0], models[1])
    raise ModelError(
        f"{deployment}: Geti project pipeline {' -> '.join(kinds) or '(no models)'} is not "
        f"supported (one task, or detection -> classification)"
    )
