"""What a benchmark measured: figures, the ratios and targets between them, and the table.

``distinfer bench`` and the comparisons under ``benchmarks/`` report the same
way: every figure goes into ``Report.values`` (the JSON) and, with its unit and
its ratio to a reference as text, into the table that ``render`` prints.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

logger = logging.getLogger(__name__)

Echo = Callable[[str], None]


class BenchSkipped(Exception):
    """A mode that cannot run here; the message says why."""


class Commands(Protocol):
    """What a report was asked for: the modes, and the command line that measures each."""

    @property
    def modes(self) -> tuple[str, ...]: ...

    def command(self, *modes: str) -> str: ...


@dataclass(frozen=True)
class Target:
    """A speed target: ``value`` (a ratio) must be ``>=`` (or ``<=``) ``bound``."""

    name: str
    value: float
    bound: float
    op: str = ">="

    @property
    def met(self) -> bool:
        return self.value >= self.bound if self.op == ">=" else self.value <= self.bound


@dataclass
class Report:
    """Everything measured: flat ``values`` (the JSON), targets, and why modes did not run.

    >>> from distinfer.bench import BenchOptions
    >>> report = Report(BenchOptions())
    >>> report.add("limit", "limit_fps", 40.0, "images/s")
    >>> report.add("sync", "sync_fps", 30.0, "images/s")
    >>> report.ratio("sync_ratio", "sync_fps", "limit_fps")
    0.75
    """

    options: Commands
    values: dict[str, Any] = field(default_factory=dict)
    rows: list[tuple[str, str, float, str, str]] = field(default_factory=list)  # see add()
    targets: list[Target] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def add(self, mode: str, key: str, value: float, unit: str, vs: str = "") -> None:
        """Record a figure: a table row (``vs``: its ratio, as text) and a JSON value."""
        self.values[key] = value
        self.rows.append((mode, key, value, unit, vs))

    def ratio(self, key: str, num: str, den: str) -> float | None:
        """Record ``num / den`` under ``key`` when both were measured."""
        a, b = self.values.get(num), self.values.get(den)
        if not isinstance(a, int | float) or not isinstance(b, int | float) or b <= 0:
            return None
        self.values[key] = a / b
        return a / b

    def target(self, name: str, num: str, den: str | None, bound: float, op: str = ">=") -> None:
        """Record a target on ``num / den`` (or on ``num`` itself) when measured."""
        value = self.ratio(name, num, den) if den is not None else self.values.get(num)
        if isinstance(value, int | float):
            self.targets.append(Target(name, float(value), bound, op))

    def targets_dict(self) -> dict[str, dict[str, Any]]:
        """The targets as JSON: ``{name: {"value", "target", "met"}}``."""
        return {
            t.name: {"value": t.value, "target": f"{t.op} {t.bound}", "met": t.met}
            for t in self.targets
        }

    def to_json(self) -> str:
        doc = {
            **self.values,
            "targets": self.targets_dict(),
            "skipped": self.skipped,
            "failed": self.failed,
            "commands": {m: self.options.command(m) for m in self.options.modes},
        }
        return json.dumps(doc, sort_keys=True)

    def render(self) -> str:
        """The human-readable table, each mode followed by the command that measures it."""
        lines = [f"{'mode':<12} {'figure':<36} {'value':>10}  {'unit':<30} ratio"]
        last = None
        for mode, key, value, unit, vs in self.rows:
            if mode != last and last is not None:
                lines.append(f"{'':<12} $ {self.options.command(last)}")
            lines.append(f"{mode:<12} {key:<36} {value:>10,.1f}  {unit:<30} {vs}".rstrip())
            last = mode
        if last is not None:
            lines.append(f"{'':<12} $ {self.options.command(last)}")
        if self.targets:
            lines.append("")
            lines.append("targets (ratios measured in this run):")
            for t in self.targets:
                verdict = "met" if t.met else "NOT MET"
                lines.append(f"  {t.name:<32} {t.value:7.3f}  (target {t.op} {t.bound})  {verdict}")
        for mode, why in self.skipped.items():
            lines.append(f"skipped {mode}: {why}")
        for mode, why in self.failed.items():
            lines.append(f"FAILED {mode}: {why}")
        for name, note in self.notes.items():
            lines.append(f"note {name}: {note}")
        return "\n".join(lines)


def guard(report: Report, mode: str, say: Echo, fn: Callable[[], None]) -> None:
    """Run one mode; record why it was skipped or how it failed, and go on."""
    say(f"{mode} ...")
    try:
        fn()
    except BenchSkipped as exc:
        report.skipped[mode] = str(exc)
    except Exception as exc:  # one mode failing must not hide the others
        logger.debug("bench mode %s failed", mode, exc_info=True)
        report.failed[mode] = f"{type(exc).__name__}: {exc}"
