"""``RunConfig``: the YAML job description, validated before anything starts.

Loaded with ``yaml.safe_load`` (no Python object tags), checked by pydantic
with unknown keys forbidden; every path or URI in it is resolved once into a
``Location`` (``config.locations``), then checked against the file system
(local inputs and models exist). Every failure is a ``ConfigError`` naming the
key path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ._errors import ConfigError
from ._locations import Locations, check_local
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

    name: str | None = None
    path: str | None = None
    task: str | None = None
    labels: list[str] | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    device: str = "CPU"
    openvino: dict[str, Any] = Field(default_factory=dict)
    cache_dir: str | None = None
    batch: int | None = Field(default=None, ge=1)

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

    images: list[str] = Field(default_factory=list)
    videos: list[str] = Field(default_factory=list)
    max_image_pixels: int = Field(default=178_956_970, gt=0)
    max_file_bytes: int = Field(default=256 * 2**20, gt=0)
    video_segment_frames: int = Field(default=240, gt=0)

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

    parquet: str
    video: str | None = None
    overlays: str | None = None
    rows_per_part: int = Field(default=5000, gt=0)
    flush_interval_s: float = Field(default=5.0, gt=0)


class StorageConfig(_Section):
    """How to reach object storage (``distinfer.storage.StorageOptions``). No credentials:
    each node reads its own from its environment, profile files or instance role."""

    endpoint: str | None = None
    region: str | None = None
    anonymous: bool = False
    max_retries: int = Field(default=10, ge=0)
    retry_timeout_s: float = Field(default=120.0, gt=0, le=300)
    lock_expiry_s: float = Field(default=60.0, gt=0)

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

    address: str | None = None
    actors_per_node: int | Literal["auto"] = "auto"
    max_nodes: int | None = Field(default=None, gt=0)
    cpus_per_actor: float | None = Field(default=None, gt=0)
    jobs_per_actor: int | None = Field(default=None, ge=0)
    items_per_unit: int | Literal["auto"] = "auto"
    units_in_flight_per_actor: int = Field(default=4, gt=0)
    reorder_buffer_items: int = Field(default=4096, gt=0)
    max_error_fraction: float = Field(default=1.0, ge=0, le=1)
    max_actor_restarts: int = Field(default=1, ge=0)
    dashboard: bool = False
    metrics: bool = False
    metrics_port: int | None = Field(default=None, gt=0, lt=65536)
    progress: Literal["auto", "bar", "lines", "off"] = "auto"

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


class RunConfig(_Section):
    """A whole job. Build it with ``RunConfig.load(path)`` or ``RunConfig.parse(dict)``.

    >>> RunConfig.parse({"model": {"name": "ppocr"}, "input": {"images": "pages/"},
    ...                  "output": {"parquet": "out/results"}}).input.images
    ['pages/']
    """

    model: ModelConfig
    input: InputConfig
    output: OutputConfig
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    base_dir: str = "."  # relative paths in the file are relative to its folder
    _locations: Locations = PrivateAttr()

    @model_validator(mode="after")
    def _resolve_locations(self) -> RunConfig:
        # A ConfigError (naming the key) is no ValueError: pydantic lets it through.
        self._locations = Locations.resolve(
            model=self.model.path,
            images=self.input.images,
            videos=self.input.videos,
            parquet=self.output.parquet,
            video=self.output.video,
            overlays=self.output.overlays,
            base_dir=self.base_dir,
            options=self.storage.options(),
        )
        return self

    @property
    def locations(self) -> Locations:
        """Every path of the job, resolved once (at load) into a ``Location``."""
        return self._locations

    @classmethod
    def parse(cls, data: Mapping[str, Any], overrides: Sequence[str] = ()) -> RunConfig:
        """Validate a dict (plus ``key.path=value`` overrides); raise ``ConfigError``."""
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"the config must be a mapping of sections, got {type(data).__name__}"
            )
        merged = _apply_overrides(dict(data), overrides)
        try:
            return cls.model_validate(merged)
        except ValidationError as exc:
            raise _config_error(exc) from None

    @classmethod
    def load(cls, path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
        """Read a YAML file safely and validate it."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from None
        if data is None:
            raise ConfigError(
                f"{path} is empty; `distinfer init {path}` writes a commented job file "
                "to start from"
            )
        if isinstance(data, Mapping):
            data = {"base_dir": str(path.resolve().parent), **data}
        return cls.parse(data, overrides)

    def check_paths(self) -> None:
        """Fail early on local inputs or models that do not exist (no Ray, no network)."""
        check_local(self.locations)


def _apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like key.path=value", "--set")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"cannot set {key}: {part} is not a section", key)
            node[part] = child = dict(child)
            node = child
        try:
            node[parts[-1]] = yaml.safe_load(raw) if raw else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML: {exc}", key) from None
    return data


def _config_error(exc: ValidationError) -> ConfigError:
    lines = []
    first_key = None
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        first_key = first_key or key
        if err["type"] == "extra_forbidden" and key.startswith("storage."):
            lines.append(
                f"{key}: unknown key; credentials never go in the job file: each node reads "
                "its own from its environment (AWS_ACCESS_KEY_ID, ...), profile files or "
                "instance role (see docs/storage.md)"
            )
        elif err["type"] == "extra_forbidden":
            lines.append(
                f"{key}: unknown key (check the spelling; see the README's config reference)"
            )
        elif key.startswith("storage"):  # the value is not echoed: it may hold a secret
            lines.append(f"{key}: {err['msg'].removeprefix('Value error, ')}")
        elif err["type"] == "missing":
            lines.append(f"{key}: required key is missing")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{key}: {msg} (got {err.get('input')!r})")
    error = ConfigError("\n".join(lines))
    error.key = first_key
    return error
