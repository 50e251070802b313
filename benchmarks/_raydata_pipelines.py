"""The Ray Data pipelines the raydata benchmark times, each built by one function here.

- ``guide_pipeline``: Ray Data as its batch-inference guide writes it,
  ``read_images -> map_batches(pool of GuidePredictor)``;
- ``predictor_pipeline``: Ray Data running distinfer as a user would,
  ``read_binary_files -> map_batches(the predictor of distinfer_predictor)``.

``distinfer_predictor`` is the one place that says which ``map_batches``
callable runs distinfer inside Ray Data: ``distinfer.ray_data.Predictor``, the
public one, so the benchmark shows its speed beside ``distinfer run``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: Ray Data's batch: 32 ran faster than 8 (our unit size) in trials here; Ray Data gets the best.
RAYDATA_BATCH_ROWS = 32


class GuidePredictor:
    """``map_batches`` callable as Ray Data's batch-inference guide writes it.

    Images come decoded by ``read_images``; each is run through the same task
    (the same letterbox, in-graph preprocessing and DB post-processing as
    distinfer) with a blocking call of the model compiled with OpenVINO's
    default configuration, one image at a time. Like distinfer, it compiles
    each of the task's graphs (input shapes) on first use only.
    """

    def __init__(self, model: str, indices: dict[str, int]) -> None:
        import openvino as ov

        from distinfer.models import task_from_model

        self.task = task_from_model(model)
        self.core = ov.Core()
        self.graphs = self.task.graphs()
        self.compiled: dict[str, Any] = {}
        self.indices = indices

    def infer(self, stage: str, inputs: Sequence[Any]) -> list[list[Any]]:
        if stage not in self.compiled:
            self.compiled[stage] = self.core.compile_model(self.graphs[stage])
        compiled = self.compiled[stage]
        return [list(compiled(np.ascontiguousarray(x[None])).values()) for x in inputs]

    def __call__(self, batch: dict[str, Any]) -> Any:
        import pyarrow as pa

        from distinfer.engine._prediction import RESULT_SCHEMA

        rows = []
        for image, path in zip(batch["image"], batch["path"], strict=True):
            try:
                outcome: Any = self.task.predict(
                    image, self.infer, (image.shape[1], image.shape[0])
                )
            except Exception as exc:  # noqa: BLE001 - this image's error row
                outcome = exc
            rows.append(result_row(self.indices, str(path), outcome))
        return pa.Table.from_pylist(rows, schema=RESULT_SCHEMA)


def result_row(indices: dict[str, int], path: str, outcome: Any) -> dict[str, Any]:
    """The result row of one image of a Ray Data job (its index from its path)."""
    from distinfer.distributed._rows import describe, error_row
    from distinfer.distributed._rows import result_row as row

    index = indices.get(path.lstrip("/"), -1)
    if isinstance(outcome, BaseException):
        return error_row(index, path, None, describe(outcome), "raydata")
    return row(index, path, None, outcome, "raydata")


def distinfer_predictor(model: str) -> tuple[type, dict[str, Any]]:
    """The ``map_batches`` callable that runs distinfer in Ray Data, and its constructor
    arguments: what the ``predictor`` jobs run."""
    from distinfer.ray_data import Predictor

    return Predictor, {"model": model}


def guide_pipeline(
    ray: Any, files: Sequence[str], model: str, indices: dict[str, int], cpus: int
) -> Any:
    """Ray Data's guide: decoded images into a pool of one-CPU predictor actors, one CPU
    of the ``cpus`` left for reading."""
    return ray.data.read_images(files, include_paths=True, mode="RGB").map_batches(
        GuidePredictor,
        fn_constructor_kwargs={"model": model, "indices": indices},
        batch_size=RAYDATA_BATCH_ROWS,
        compute=ray.data.ActorPoolStrategy(size=max(1, cpus - 1)),
        num_cpus=1,
        batch_format="numpy",
    )


def predictor_pipeline(ray: Any, files: Sequence[str], model: str, cpus: int, pool: bool) -> Any:
    """Ray Data given distinfer: file bytes into a pool of predictors of one CPU each
    (``pool``, the guide's shape), or into one predictor holding every CPU but one; one
    CPU of the ``cpus`` left for reading either way."""
    spare = max(1, cpus - 1)
    predictor, kwargs = distinfer_predictor(model)
    return ray.data.read_binary_files(files, include_paths=True).map_batches(
        predictor,
        fn_constructor_kwargs=kwargs,
        batch_size=RAYDATA_BATCH_ROWS,
        compute=ray.data.ActorPoolStrategy(size=spare if pool else 1),
        num_cpus=1 if pool else spare,
        batch_format="numpy",
    )
