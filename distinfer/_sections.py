"""The sections of a job file: ``model``, ``input``, ``output``, ``cluster``, ``storage``.

Each is a frozen pydantic model with unknown keys refused; every key's
``description`` is its entry in docs/config.md (``python3 dev.py docs``).
``RunConfig`` (``_config``) holds one of each.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .engine._threads import INFERENCE_NICENESS, MAX_NICENESS
from .models._bundled import BUNDLED_MODELS
from .storage import StorageOptions

if TYPE_CHECKING:
    from .models import Task
    from .storage import Location


_RAY_ADDRESS = re.compile(r"(ray://)?(\[[0-9a-fA-F:]+\]|[\w.-]+):\d{1,5}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Section):
    """Which model to run: a bundled ``name`` or a ``path`` (file or deployment folder)."""

    name: str | None = Field(
        default=None,
        description=(
            "A bundled model: `ppocr` (text detection, orientation, recognition), `ppocr-det` "
            "(text boxes only) or `ppocr-cls` (line orientation). Give exactly one of `name` and "
            "`path`."
        ),
    )
    path: str | None = Field(
        default=None,
        description=(
            "A model file (`.xml` IR, `.onnx`, `.tflite`, `.pdmodel`) or a deployment folder (the"
            " Geti SDK's `Deployment.save` layout, or distinfer's); local or a URI, fetched once "
            "per node into a local cache."
        ),
    )
    task: str | None = Field(
        default=None,
        description=(
            "`raw`, `classification`, `detection`, `segmentation` or `instance_segmentation`; "
            "default: the model's `rt_info/model_info/model_type` (Geti and OTX exports set it)."
        ),
    )
    labels: list[str] | None = Field(
        default=None,
        description="Label names, overriding the model's `rt_info/model_info/labels`.",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Task options: openvino-model-api parameters (`confidence_threshold`, "
            "`iou_threshold`, `resize_type`, ...) or the `raw` task's `size`, `mean`, `scale`, "
            "`layout`, `color`."
        ),
    )
    device: str = Field(
        default="CPU",
        description="The OpenVINO device to compile for.",
    )
    openvino: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "OpenVINO properties, merged over `PERFORMANCE_HINT: THROUGHPUT` (and, with several "
            "actors per node, each actor's share of the cores, unpinned)."
        ),
    )
    cache_dir: str | None = Field(
        default=None,
        description=(
            "OpenVINO's compiled-blob cache on each node (`CACHE_DIR`): actors start faster the "
            "second time."
        ),
    )
    batch: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Inputs per infer request for the stages that batch (default: the task's own; ppocr's"
            " classifier and recogniser take 8)."
        ),
    )
    inference_niceness: int = Field(
        default=INFERENCE_NICENESS,
        ge=0,
        le=MAX_NICENESS,
        description=(
            "How much nicer than the engine's host threads OpenVINO's inference threads run "
            "(Linux): a host thread that wakes to decode or to feed a request then gets a core "
            "at once instead of queueing behind inference while it holds the GIL. 0: equal."
        ),
    )

    def build_task(self, location: Location | None = None) -> Task:
        """Load the task this section describes: a bundled model, or the file or folder
        at ``location`` (default: ``path`` from the cwd), fetched into this node's
        model cache first when it is on object storage."""
        from .models import load_folder, task_from_model
        from .storage import fetch_model, resolve_location

        if self.name is not None:
            return task_from_model(self.name, task=self.task, labels=self.labels, **self.options)
        path = fetch_model(location or resolve_location(self.path or "", "."))
        if path.is_dir():
            return load_folder(path)
        return task_from_model(path, task=self.task, labels=self.labels, **self.options)

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        if (self.name is None) == (self.path is None):
            raise ValueError("give exactly one of model.name (a bundled model) or model.path")
        if self.name is not None and self.name not in BUNDLED_MODELS:
            raise ValueError(
                f"unknown bundled model {self.name!r}; bundled: {', '.join(BUNDLED_MODELS)} "
                "(use model.path for your own model)"
            )
        return self


class InputConfig(_Section):
    """What to run on: image specs and video files (each a string or a list)."""

    images: list[str] = Field(
        default_factory=list,
        description=(
            "Image inputs, one spec or a list: a folder or prefix (recursive), a glob "
            "(`pages/**/*.jpg`), one image, a `.tar`/`.tar.gz`/`.zip` archive, or a "
            "`.txt`/`.csv`/`.parquet` list of paths or URIs ([inputs-outputs.md](inputs-"
            "outputs.md))."
        ),
    )
    videos: list[str] = Field(
        default_factory=list,
        description=(
            "Video files or globs; each is split at keyframes and decoded frame-exactly in "
            "parallel. Their frames come first in the index order."
        ),
    )
    max_image_pixels: int = Field(
        default=178_956_970,
        gt=0,
        description=(
            "Images with more pixels are error rows, refused from their header before decoding (a"
            " decompression bomb costs nothing)."
        ),
    )
    max_file_bytes: int = Field(
        default=256 * 2**20,
        gt=0,
        description="Files (and archive members) larger than this are error rows.",
    )
    video_segment_frames: int = Field(
        default=240,
        gt=0,
        description="Frames per video work unit, cut at the first keyframe past this many.",
    )

    @field_validator("images", "videos", mode="before")
    @classmethod
    def _as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _something(self) -> InputConfig:
        if not self.images and not self.videos:
            raise ValueError("give input.images and/or input.videos")
        return self


class OutputConfig(_Section):
    """Where results go: a Parquet dataset directory, optional video and overlays."""

    parquet: str = Field(
        description=(
            "The results dataset: a folder or prefix of `part-*.parquet` files with "
            "`_manifest.json`; local or a URI ([inputs-outputs.md](inputs-outputs.md))."
        )
    )
    video: str | None = Field(
        default=None,
        description=(
            "The annotated video; with several input videos, `<stem>-000-<name><suffix>`, ... "
            "beside it."
        ),
    )
    overlays: str | None = Field(
        default=None,
        description=(
            "A folder or prefix for one annotated JPEG per image (sanitised relative names, "
            "`<stem>-<index>.jpg`)."
        ),
    )
    rows_per_part: int = Field(
        default=5000,
        gt=0,
        description="Rows per committed Parquet part.",
    )
    flush_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="When results trickle in, a smaller part is committed after this many seconds.",
    )


class StorageConfig(_Section):
    """How to reach object storage (``distinfer.storage.StorageOptions``). No credentials:
    each node reads its own from its environment, profile files or instance role."""

    endpoint: str | None = Field(
        default=None,
        description=(
            "An S3-compatible server (`http://minio:9000`; `http://` works); default: AWS, or "
            "`AWS_ENDPOINT_URL` / the AWS profile's `endpoint_url`."
        ),
    )
    region: str | None = Field(
        default=None,
        description="The bucket's region; default: `AWS_REGION`, else the AWS profile's.",
    )
    anonymous: bool = Field(
        default=False,
        description="Unsigned requests, for public buckets.",
    )
    max_retries: int = Field(
        default=10,
        ge=0,
        description=(
            "Attempts of a request that failed transiently (503 SlowDown, 5xx, a reset "
            "connection, a timeout), with backoff ..."
        ),
    )
    retry_timeout_s: float = Field(
        default=120.0,
        gt=0,
        le=300,
        description="... for at most this long; then the run stops (exit 1) and a rerun resumes.",
    )
    lock_expiry_s: float = Field(
        default=60.0,
        gt=0,
        description=(
            "An output lock on object storage not renewed for this long is taken over (its run is"
            " gone); a run renews its lock every quarter of it."
        ),
    )

    @field_validator("*")
    @classmethod
    def _as_storage_options(cls, value: Any, info: ValidationInfo) -> Any:
        try:
            StorageOptions(**{str(info.field_name): value})
        except ValueError as exc:
            raise ValueError(str(exc).removeprefix(f"storage {info.field_name}: ")) from None
        return value

    def options(self) -> StorageOptions:
        return StorageOptions(**self.model_dump())


class ClusterConfig(_Section):
    """Where and how wide to run."""

    address: str | None = Field(
        default=None,
        description=(
            "null: an embedded local Ray on 127.0.0.1, started and stopped with the run; `auto`: "
            "`RAY_ADDRESS` or the cluster `ray start` last started here; `host:port` (the head's "
            "GCS) or `ray://host:port` (Ray Client)."
        ),
    )
    actors_per_node: int | Literal["auto"] = Field(
        default="auto",
        description=(
            "Inference actors per node, each with its share of the node's cores, unpinned; "
            "`auto`: 1 below 8 cores, then one per 4 cores ([cluster.md](cluster.md))."
        ),
    )
    max_nodes: int | None = Field(
        default=None,
        gt=0,
        description=(
            "The most nodes a run uses at once (null: all, including nodes that join during the "
            "run)."
        ),
    )
    cpus_per_actor: float | None = Field(
        default=None,
        gt=0,
        description=(
            "Ray CPUs reserved per actor (default: the node's CPUs divided among its actors)."
        ),
    )
    jobs_per_actor: int | None = Field(
        default=None,
        ge=0,
        description=(
            "Infer requests per actor (default: one per core, at least two per OpenVINO stream; "
            "0: OpenVINO's optimal number)."
        ),
    )
    items_per_unit: int | Literal["auto"] = Field(
        default="auto",
        description=(
            "Images per work unit (one host task, one collector call); `auto`: 8, growing to 256 "
            "so that a unit is about 0.25 s of an actor's work."
        ),
    )
    units_in_flight_per_actor: int = Field(
        default=4,
        gt=0,
        description=(
            "Units an actor holds at once: a faster actor frees its credits sooner and gets more "
            "work."
        ),
    )
    reorder_buffer_items: int = Field(
        default=4096,
        gt=0,
        description=(
            "How far work may run ahead of the lowest unfinished item: bounds the collector's "
            "reorder buffer, whatever the input size."
        ),
    )
    max_error_fraction: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description=(
            "Stop the run (exit 1, resumable) when more than this fraction of the items so far "
            "failed (checked from 20 items on)."
        ),
    )
    max_actor_restarts: int = Field(
        default=1,
        ge=0,
        description="Restarts of a dead inference actor before its units go to the others.",
    )
    dashboard: bool = Field(
        default=False,
        description="The embedded Ray's dashboard, on 127.0.0.1 with token authentication.",
    )
    metrics: bool = Field(
        default=False,
        description=(
            "distinfer's series (`distinfer_*`) through `ray.util.metrics`, on Ray's Prometheus "
            "endpoint ([cluster.md](cluster.md)); off: no metrics port opens."
        ),
    )
    metrics_port: int | None = Field(
        default=None,
        gt=0,
        lt=65536,
        description=(
            "The embedded Ray's metrics endpoint port, on 127.0.0.1 (default: Ray's pick, printed"
            " at start)."
        ),
    )
    progress: Literal["auto", "bar", "lines", "off"] = Field(
        default="auto",
        description=(
            "`auto`: a bar on a terminal, a line every 10 s otherwise; `bar`, `lines` or `off`."
        ),
    )

    @field_validator("address")
    @classmethod
    def _ray_address(cls, value: str | None) -> str | None:
        if value is None or value == "auto" or _RAY_ADDRESS.fullmatch(value):
            return value
        raise ValueError(
            "give auto, host:port (the head's GCS, 6379 by default) or ray://host:port "
            "(Ray Client, 10001 by default); leave it out for an embedded local Ray"
        )

    @field_validator("items_per_unit", mode="before")
    @classmethod
    def _auto_or_count(cls, value: Any) -> Any:
        count = isinstance(value, int) and not isinstance(value, bool)
        if value == "auto" or (count and value > 0):
            return value
        raise ValueError("give a number of images greater than 0, or auto")

    @field_validator("actors_per_node", mode="before")
    @classmethod
    def _auto_or_actors(cls, value: Any) -> Any:
        count = isinstance(value, int) and not isinstance(value, bool)
        if value == "auto" or (count and value > 0):
            return value
        raise ValueError(
            "give a number of actors greater than 0, or auto (sized from each node's cores; "
            "see docs/cluster.md)"
        )
