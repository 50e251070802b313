"""``RunConfig``: the YAML job description, validated before anything starts.

Loaded with ``yaml.safe_load`` (no Python object tags), checked by pydantic
with unknown keys forbidden, then checked against the file system (inputs and
models exist). Every failure is a ``ConfigError`` naming the key path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ._errors import ConfigError
from .models._bundled import BUNDLED_MODELS

if TYPE_CHECKING:
    from .models import Task


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

    def build_task(self, base_dir: str | Path = ".") -> Task:
        """Load the task this section describes (a bundled model, file or folder)."""
        from .models import load_folder, task_from_model

        if self.name is not None:
            return task_from_model(self.name, task=self.task, labels=self.labels, **self.options)
        path = Path(self.path or "").expanduser()
        if not path.is_absolute():
            path = Path(base_dir) / path
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
    base_dir: str = "."  # relative paths in the file are relative to its folder

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

    def resolve(self, value: str) -> str:
        """A path from the config, relative to the config file's folder."""
        if "://" in value:
            return value
        p = Path(value).expanduser()
        return os.path.normpath(p if p.is_absolute() else Path(self.base_dir) / p)

    def check_paths(self) -> None:
        """Fail early on inputs or models that do not exist (no Ray needed)."""
        if self.model.path is not None and not Path(self.resolve(self.model.path)).exists():
            raise ConfigError(
                f"model file or folder {self.resolve(self.model.path)} does not exist", "model.path"
            )
        for section in ("images", "videos"):
            for i, spec in enumerate(getattr(self.input, section)):
                path = self.resolve(spec)
                if not _has_glob(path) and not Path(path).exists():
                    raise ConfigError(
                        f"{path} does not exist (give a folder, glob, archive, list or file)",
                        f"input.{section}[{i}]",
                    )


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
        if err["type"] == "extra_forbidden":
            lines.append(
                f"{key}: unknown key (check the spelling; see the README's config reference)"
            )
        elif err["type"] == "missing":
            lines.append(f"{key}: required key is missing")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{key}: {msg} (got {err.get('input')!r})")
    error = ConfigError("\n".join(lines))
    error.key = first_key
    return error


def _has_glob(path: str) -> bool:
    return any(c in path for c in "*?[")
