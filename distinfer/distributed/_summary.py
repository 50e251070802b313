"""What a run did, as the driver reports it: ``RunSummary``, and the progress callback's type."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunSummary:
    """What a run did; ``errors`` > 0 makes ``distinfer run`` exit with 1.

    ``nodes`` maps each actor's name to its ``items``, ``errors`` and ``busy_s``.
    """

    total: int = 0
    processed: int = 0
    errors: int = 0
    resumed_from: int = 0
    elapsed_s: float = 0.0
    aborted: str | None = None
    nodes: dict[str, dict[str, float]] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)
    items_per_unit: int = 0  # images per unit at the end (``items_per_unit: auto`` adapts)
    finished: bool = False  # the run has ended (every item done, or aborted)

    @property
    def items_per_s(self) -> float:
        return self.processed / self.elapsed_s if self.elapsed_s > 0 else 0.0


#: Called as the run goes with the live summary and the total (None until it is known).
ProgressFn = Callable[[RunSummary, int | None], None]
