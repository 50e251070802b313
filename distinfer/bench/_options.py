"""What ``distinfer bench`` is asked to measure: its modes and options."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine._threads import INFERENCE_NICENESS

ENGINE_MODES = ("limit", "plain", "sync", "async", "video")
#: What a page costs the host (CPU with inference replayed, GIL held): ``_host``.
HOST_MODES = ("host",)
RAY_MODES = ("distributed",)
MODES = ENGINE_MODES + HOST_MODES + RAY_MODES
#: The modes that run on the pages (generated, or ``--images-dir``).
PAGE_MODES = ("plain", "sync", "async", "video", "host", "distributed")
_OPENVINO = "model.openvino."
_NICENESS = "model.inference_niceness="
#: Names that stand for several modes in ``--modes``.
MODE_GROUPS = {"engine": ENGINE_MODES, "all": MODES}


@dataclass(frozen=True)
class BenchOptions:
    """What ``distinfer bench`` measures; the fields mirror its options."""

    modes: tuple[str, ...] = ENGINE_MODES
    model: str = "ppocr-det"
    images: int = 200
    images_dir: Path | None = None
    seconds: float = 10.0
    repeat: int = 1
    overrides: tuple[str, ...] = ()
    device: str = "CPU"

    def __post_init__(self) -> None:
        unknown = [m for m in self.modes if m not in MODES]
        if unknown or not self.modes:
            raise ValueError(f"unknown modes {unknown or '(none)'}; choose from {', '.join(MODES)}")
        for name in ("images", "repeat"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.seconds <= 0:
            raise ValueError(f"seconds must be > 0, got {self.seconds}")
        self.inference_niceness  # noqa: B018 - a bad --set value fails before any mode runs

    @property
    def openvino(self) -> dict[str, Any]:
        """``openvino_overrides`` of this bench's ``--set`` values."""
        return openvino_overrides(self.overrides)

    @property
    def inference_niceness(self) -> int:
        """``model.inference_niceness`` from ``--set`` (the last one), else the engine's
        default: the in-process modes use it as a run would.

        >>> BenchOptions(overrides=("model.inference_niceness=0",)).inference_niceness
        0
        """
        from .._config import apply_overrides
        from .._errors import ConfigError
        from ..ray_data import model_config

        chosen = [o for o in self.overrides if o.startswith(_NICENESS)]
        if not chosen:
            return INFERENCE_NICENESS
        value = apply_overrides({}, chosen[-1:])["model"]["inference_niceness"]
        try:
            return model_config(self.model, inference_niceness=value).inference_niceness
        except ConfigError as exc:
            raise ValueError(f"--set {chosen[-1]}: {exc}") from None

    def command(self, *modes: str) -> str:
        """The ``distinfer bench`` command line that measures ``modes`` alone.

        >>> BenchOptions(images=8).command("sync")
        'distinfer bench --modes sync --model ppocr-det --images 8'
        """
        parts = ["distinfer bench", f"--modes {','.join(modes)}", f"--model {self.model}"]
        if set(modes) & set(PAGE_MODES):
            parts.append(
                f"--images-dir {self.images_dir}" if self.images_dir else f"--images {self.images}"
            )
        if set(modes) & {"limit", "distributed"}:
            parts.append(f"--seconds {self.seconds:g}")
        if self.repeat > 1:
            parts.append(f"--repeat {self.repeat}")
        if self.device != "CPU":
            parts.append(f"--device {self.device}")
        parts.extend(f"--set {o}" for o in self.overrides)
        return " ".join(parts)


def parse_modes(text: str) -> tuple[str, ...]:
    """``"limit,sync"`` -> the modes; ``engine`` and ``all`` name groups.

    >>> parse_modes("sync,engine")
    ('sync', 'limit', 'plain', 'async', 'video')
    """
    modes: list[str] = []
    for name in (part.strip() for part in text.split(",")):
        for mode in MODE_GROUPS.get(name, (name,) if name else ()):
            if mode not in modes:
                modes.append(mode)
    return tuple(modes)


def openvino_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """The ``model.openvino`` properties among ``--set`` values: every mode compiles with
    them (a distributed run through its job config, the in-process modes and the limit
    directly), so that the ratios compare like with like.

    >>> openvino_overrides(["model.openvino.INFERENCE_NUM_THREADS=1", "cluster.address=auto"])
    {'INFERENCE_NUM_THREADS': 1}
    """
    from .._config import apply_overrides

    # The job file's own parser, so that every mode reads a value as the run does.
    chosen = [o for o in overrides if o.startswith(_OPENVINO)]
    found: dict[str, Any] = apply_overrides({}, chosen).get("model", {}).get("openvino", {})
    return found
