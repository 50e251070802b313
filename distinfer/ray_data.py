"""distinfer's engine inside Ray Data: ``Predictor``, a callable class for ``map_batches``::

    import ray.data
    from ray.data import ActorPoolStrategy
    from distinfer.ray_data import Predictor

    ds = ray.data.read_binary_files("scans/", include_paths=True)
    ds = ds.map_batches(Predictor, fn_constructor_kwargs={"model": "ppocr"},
                        compute=ActorPoolStrategy(size=2), batch_size=32)
    ds.write_parquet("out/ocr")

The rows have the columns and types of ``distinfer run``'s results (see ``Predictor``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ._errors import ConfigError
from ._sections import ModelConfig
from .distributed._rows import ItemResult, ResultBatch
from .engine._decode import DEFAULT_MAX_IMAGE_PIXELS
from .engine._engine import Engine, Image, Outcome
from .engine._prediction import RESULT_SCHEMA
from .engine._threads import available_cores, single_threaded_opencv
from .models._bundled import BUNDLED_MODELS

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Predictor"]

#: The input columns ``Predictor`` reads, in the order it looks for them:
#: ``ray.data.read_images`` makes ``image``, ``ray.data.read_binary_files`` ``bytes``.
INPUT_COLUMNS = ("image", "bytes")
#: The columns it adds, typed as in the Parquet results (``RESULT_SCHEMA``).
OUTPUT_COLUMNS = ("width", "height", "predictions", "text", "error")
_RGB_HINT = 'ray.data.read_images(..., mode="RGB") gives HxWx3 RGB arrays'


class Predictor:
    """Run a model over Ray Data batches: one engine per actor, a whole batch in flight.

    ``model`` is a bundled model (``ppocr``, ``ppocr-det``, ``ppocr-cls``) or the
    path of a model file or deployment folder, which every worker must be able
    to read (give it absolute). ``task``, ``labels``, ``options``, ``device``,
    ``openvino``, ``cache_dir``, ``batch`` and ``inference_niceness`` are those of
    the ``model`` section of a job file.

    Input: the ``image`` column (RGB HxWx3 ``uint8`` arrays, as
    ``ray.data.read_images(..., mode="RGB")`` makes them) or the ``bytes``
    column (encoded images, as ``ray.data.read_binary_files`` makes them;
    decoded here like ``distinfer run`` decodes files: JPEGs at a reduced scale
    when the model allows it, ``max_image_pixels`` checked on the header).
    ``column`` picks one when a batch has both. Batches may come as numpy
    (``batch_format="numpy"``, the default) or pandas.

    Output: a ``pyarrow.Table`` with the batch's other columns, then ``width``,
    ``height``, ``predictions``, ``text`` and ``error``, of the same types and
    values as the rows of a ``distinfer run`` (plus ``tensors`` for the ``raw``
    task). The input column is dropped (it is large) unless ``keep_input``. An
    image that cannot be decoded or has the wrong shape gets ``error`` set and
    no predictions; the other rows of its batch are unaffected.

    Cores: the engine uses the CPUs Ray reserved for the actor (``num_cpus`` of
    ``map_batches``, 1 by default), unpinned when that is less than the machine,
    as several actors on a node must not pin the same cores; settings in
    ``openvino`` win.
    """

    def __init__(
        self,
        model: str | Path,
        *,
        task: str | None = None,
        labels: Sequence[str] | None = None,
        options: Mapping[str, Any] | None = None,
        device: str = "CPU",
        openvino: Mapping[str, Any] | None = None,
        cache_dir: str | None = None,
        batch: int | None = None,
        inference_niceness: int | None = None,
        column: str | None = None,
        keep_input: bool = False,
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    ) -> None:
        config = model_config(
            model,
            task=task,
            labels=labels,
            options=options,
            device=device,
            openvino=openvino,
            cache_dir=cache_dir,
            batch=batch,
            inference_niceness=inference_niceness,
        )
        if column is not None and column not in INPUT_COLUMNS:
            raise ConfigError(f"column must be one of {', '.join(INPUT_COLUMNS)}, got {column!r}")
        self.column = column
        self.keep_input = keep_input
        task_ = config.build_task()
        self._columns = (*OUTPUT_COLUMNS, "tensors") if task_.kind == "raw" else OUTPUT_COLUMNS
        single_threaded_opencv()  # a Ray Data actor's process: parallelism is the engine's
        self.engine = Engine(
            task_,
            device=config.device,
            config=share_openvino_config(config.openvino, _reserved_cpus(), available_cores()),
            cache_dir=config.cache_dir,
            max_image_pixels=max_image_pixels,
            batch=config.batch,
            inference_niceness=config.inference_niceness,
        ).start()

    def close(self) -> None:
        """Release the engine (Ray Data ends the actor anyway)."""
        self.engine.close()

    def __call__(self, batch: Mapping[str, Any] | pd.DataFrame) -> pa.Table:
        name = self._input_column(batch)
        keep = [c for c in _column_names(batch) if c != name or self.keep_input]
        taken = sorted(set(keep) & set(self._columns))
        if taken:
            raise ConfigError(
                f"the batch already has the columns {taken}, which Predictor adds; "
                "rename or drop them first"
            )
        images = list(_items(batch[name]))
        outcomes = self._infer(images)
        # The rows of a run (source and node left blank), built from the columns the same way.
        items = [
            ItemResult(i, "", None, "", error=_message(outcome, image))
            if isinstance(outcome, BaseException)
            else ItemResult(i, "", None, "", outcome)
            for i, (outcome, image) in enumerate(zip(outcomes, images, strict=True))
        ]
        rows = (
            pa.Table.from_batches([ResultBatch.from_items(items).records])
            if items
            else RESULT_SCHEMA.empty_table()
        )
        results = rows.select(list(self._columns))
        table = _passed_through(batch, keep)
        if table is None:
            return results
        for field, values in zip(results.schema, results.columns, strict=True):
            table = table.append_column(field, values)
        return table

    def _input_column(self, batch: Mapping[str, Any] | pd.DataFrame) -> str:
        names = _column_names(batch)
        if self.column is not None:
            if self.column not in names:
                raise ConfigError(f"the batch has no {self.column!r} column (it has {names})")
            return self.column
        for name in INPUT_COLUMNS:
            if name in names:
                return name
        raise ConfigError(
            f"the batch has neither an 'image' column (ray.data.read_images) nor a 'bytes' "
            f"column (ray.data.read_binary_files); it has {names}"
        )

    def _infer(self, images: list[Image]) -> list[Outcome]:
        """Every image through the engine's queue; its host threads take them in groups."""
        outcomes: list[Outcome | None] = [None] * len(images)
        left = threading.Semaphore(0)

        def finisher(i: int) -> Any:
            def done(found: Outcome, pixels: np.ndarray | None) -> None:
                outcomes[i] = found
                left.release()

            return done

        for i, image in enumerate(images):
            self.engine.submit(image, finisher(i))
        for _ in images:
            left.acquire()
        assert all(o is not None for o in outcomes), "every item reports its outcome"
        return outcomes  # type: ignore[return-value]


def model_config(model: str | Path, **fields: Any) -> ModelConfig:
    """The ``model`` section a job file would hold for these arguments.

    >>> model_config("ppocr-det").name
    'ppocr-det'
    >>> model_config("/models/det.xml", labels=["cat"]).path
    '/models/det.xml'
    """
    from pydantic import ValidationError

    from ._config import _config_error

    source = {"name": model} if str(model) in BUNDLED_MODELS else {"path": str(model)}
    values = {k: v for k, v in fields.items() if v is not None}
    if "labels" in values:
        values["labels"] = list(values["labels"])
    try:
        return ModelConfig(**source, **values)
    except ValidationError as exc:
        raise _config_error(exc) from None


def share_openvino_config(
    config: Mapping[str, Any], reserved_cpus: float | None, cores: int
) -> dict[str, Any]:
    """OpenVINO settings of an actor that Ray gave ``reserved_cpus`` of the ``cores``.

    Several actors on one machine each use their share, unpinned: OpenVINO pins
    its threads by default, and every process pins from the same first core
    (see ``actor_openvino_config`` of the distributed run). Settings in
    ``config`` win; None (not in a Ray actor): the whole machine.

    >>> share_openvino_config({}, 2.0, 16)
    {'INFERENCE_NUM_THREADS': 2, 'ENABLE_CPU_PINNING': False}
    >>> share_openvino_config({}, 16.0, 16), share_openvino_config({}, None, 16)
    ({}, {})
    """
    openvino = dict(config)
    if reserved_cpus is not None and reserved_cpus < cores:
        openvino.setdefault("INFERENCE_NUM_THREADS", max(1, int(reserved_cpus)))
        openvino.setdefault("ENABLE_CPU_PINNING", False)
    return openvino


def _reserved_cpus() -> float | None:
    """The CPUs Ray reserved for this actor; None outside a Ray actor."""
    import ray

    if not ray.is_initialized():
        return None
    context = ray.get_runtime_context()
    if context.get_actor_id() is None:  # a driver: nothing reserved, the whole machine
        return None
    cpus = context.get_assigned_resources().get("CPU")
    return float(cpus) if cpus else None


def _column_names(batch: Mapping[str, Any] | pd.DataFrame) -> list[str]:
    return [str(c) for c in (batch.columns if hasattr(batch, "columns") else batch.keys())]


def _items(column: Any) -> list[Any]:
    """The images of a column: a numpy array (N x H x W x 3, or objects) or a pandas Series."""
    values = column.to_numpy() if hasattr(column, "to_numpy") else column
    if isinstance(values, np.ndarray) and values.ndim == 0:
        values = values.reshape(1)
    return list(values)


def _message(exc: BaseException, image: Any) -> str:
    """The error of one row, as ``distinfer run`` words it (with a hint for arrays)."""
    from .distributed._rows import describe

    message = describe(exc)
    if isinstance(image, np.ndarray) and (image.ndim != 3 or image.shape[-1] != 3):
        message += f"; {_RGB_HINT}"
    return message


def _passed_through(batch: Mapping[str, Any] | pd.DataFrame, names: list[str]) -> pa.Table | None:
    """The columns ``names`` of a batch as an Arrow table (tensors as Ray Data stores them)."""
    if not names:
        return None
    from ray.data.block import BlockAccessor, BlockType

    if isinstance(batch, Mapping):
        block = BlockAccessor.batch_to_block({n: batch[n] for n in names}, BlockType.ARROW)
    else:  # pandas
        block = BlockAccessor.for_block(batch[names]).to_arrow()
    return block if isinstance(block, pa.Table) else pa.table(block)
