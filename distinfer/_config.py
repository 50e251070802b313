"""``RunConfig``: the YAML job description, validated before anything starts.

Loaded with ``yaml.safe_load`` (no Python object tags), checked by pydantic
with unknown keys forbidden; every path or URI in it is resolved once into a
``Location`` (``config.locations``), then checked against the file system
(local inputs and models exist). Every failure is a ``ConfigError`` naming the
key path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from ._errors import ConfigError
from ._locations import Locations, check_local
from ._sections import (
    ClusterConfig,
    InputConfig,
    ModelConfig,
    OutputConfig,
    StorageConfig,
    _Section,
)

if TYPE_CHECKING:
    pass


class RunConfig(_Section):
    """A whole job. Build it with ``RunConfig.load(path)`` or ``RunConfig.parse(dict)``.

    >>> RunConfig.parse({"model": {"name": "ppocr"}, "input": {"images": "pages/"},
    ...                  "output": {"parquet": "out/results"}}).input.images
    ['pages/']
    """

    model: ModelConfig
    input: InputConfig
    output: OutputConfig
    cluster: ClusterConfig = Field(
        default_factory=ClusterConfig, description="Where and how wide to run."
    )
    storage: StorageConfig = Field(
        default_factory=StorageConfig,
        description="Object storage: endpoint, region, retries, the lock; never credentials.",
    )
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
        merged = apply_overrides(dict(data), overrides)
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


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``data`` with each ``key.path=value`` of ``overrides`` set (values read as YAML)."""
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
