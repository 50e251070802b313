"""``benchmarks/run.py``: pick benchmarks by name, parse their options, run, write the results.

A benchmark is a module here with a docstring (its first line: name and what it
measures), ``DEFAULTS`` (the shared options it takes, with its defaults; see
``SHARED``), ``add_arguments(parser)`` (its own options) and
``run(args, report, workdir, say)``, which fills a ``distinfer.bench.Report``.
Each run writes ``RESULTS_DIR/<name>.json``: the command line, the date, the
machine, the options as resolved and the figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from distinfer.bench import Report, guard

from . import (
    actors_per_node,
    cls,
    collector,
    distributed,
    engine_probe,
    load,
    memory,
    raydata,
    storage,
)
from ._proc import cpu_model

#: The benchmarks, by the name ``run.py`` takes.
BENCHMARKS: dict[str, ModuleType] = {
    "raydata": raydata,
    "cls": cls,
    "collector": collector,
    "memory": memory,
    "distributed": distributed,
    "actors-per-node": actors_per_node,
    "load": load,
    "engine-probe": engine_probe,
    "storage": storage,
}
ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
PROG = "python benchmarks/run.py"

#: Options several benchmarks take: flags and argparse settings (the default is each
#: benchmark's, from its ``DEFAULTS``).
SHARED: dict[str, tuple[str, dict[str, Any]]] = {
    "model": ("--model", {"help": "A bundled model name or a model file."}),
    "images": ("--images", {"type": int, "help": "Images to generate and run on."}),
    "images_dir": (
        "--images-dir",
        {"type": Path, "help": "Run on the images of this folder instead."},
    ),
    "seconds": (
        "--seconds",
        {"type": float, "help": "Duration of each bare-model limit measurement."},
    ),
    "repeat": ("--repeat", {"type": int, "help": "Rounds or runs; the median is reported."}),
    "device": ("--device", {"help": "OpenVINO device of the limit measurements."}),
    "overrides": (
        "--set",
        {
            "action": "append",
            "metavar": "KEY.PATH=VALUE",
            "help": "Override a run's config value (repeatable).",
        },
    ),
}


@dataclass(frozen=True)
class _Command:
    """A report's command: the same line for every mode of one benchmark run."""

    modes: tuple[str, ...]
    line: str

    def command(self, *modes: str) -> str:
        return self.line


def summary(name: str) -> str:
    """The first line of a benchmark's docstring, without its name."""
    doc = BENCHMARKS[name].__doc__ or ""
    return doc.strip().splitlines()[0].partition(": ")[2].replace("``", "")


def _listing() -> str:
    width = max(map(len, BENCHMARKS))
    lines = [f"usage: {PROG} NAME [NAME...] [options]  (NAME --help: its options)", ""]
    lines += [f"  {name:<{width}}  {summary(name)}" for name in BENCHMARKS]
    lines += ["", f"Each run writes {RESULTS_DIR.relative_to(ROOT)}/NAME.json."]
    return "\n".join(lines)


def parser_for(names: Sequence[str]) -> argparse.ArgumentParser:
    """The options of ``names``: the shared ones they take, then each one's own."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="\n\n".join((BENCHMARKS[n].__doc__ or n).strip() for n in names),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("names", nargs="+", metavar="NAME", choices=sorted(BENCHMARKS))
    for key, (flag, settings) in SHARED.items():
        takers = [n for n in names if key in BENCHMARKS[n].DEFAULTS]
        if not takers:
            continue
        defaults = {n: BENCHMARKS[n].DEFAULTS[key] for n in takers}
        shown = ", ".join(
            f"{n} {v}" if len(takers) > 1 else str(v)
            for n, v in defaults.items()
            if v not in (None, ())
        )
        help_text = settings["help"] + (f" (default: {shown})" if shown else "")
        parser.add_argument(flag, dest=key, **{**settings, "help": help_text})
    for name in names:
        BENCHMARKS[name].add_arguments(parser.add_argument_group(name))
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS_DIR,
        help=f"Where NAME.json goes (default {RESULTS_DIR.relative_to(ROOT)}).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="Log failures in full.")
    return parser


def options_of(name: str, args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with the shared options ``name`` takes given its defaults where not set."""
    resolved = argparse.Namespace(**vars(args))
    for key, default in BENCHMARKS[name].DEFAULTS.items():
        if getattr(resolved, key, None) is None:
            setattr(resolved, key, default)
    if getattr(resolved, "overrides", None) is not None:
        resolved.overrides = tuple(resolved.overrides)
    return resolved


def own_options(name: str) -> list[str]:
    """The names of the options ``name`` adds itself (``add_arguments``)."""
    scratch = argparse.ArgumentParser(add_help=False)
    BENCHMARKS[name].add_arguments(scratch)
    return list(vars(scratch.parse_args([])))


def machine() -> dict[str, Any]:
    """What the figures were measured on."""

    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return {
        "cores": os.cpu_count(),
        "available_cores": available,
        "cpu_model": cpu_model() or platform.processor() or platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "openvino": version("openvino"),
        "ray": version("ray"),
        "distinfer": version("distinfer"),
        "git_commit": _git_commit(),  # "-dirty": uncommitted changes
    }


def _git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=40"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    return done.stdout.strip() or None


def run_one(name: str, args: argparse.Namespace, command: str) -> tuple[Report, Path]:
    """Run benchmark ``name``, print its table, write its JSON; the report and the file."""
    options = options_of(name, args)
    report = Report(_Command((name,), command))

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    started = datetime.now().astimezone()
    with tempfile.TemporaryDirectory(prefix=f"distinfer-{name}-") as tmp:
        workdir = Path(tmp)
        guard(report, name, say, lambda: BENCHMARKS[name].run(options, report, workdir, say))
    print(report.render(), flush=True)
    shared = {k: _jsonable(getattr(options, k)) for k in BENCHMARKS[name].DEFAULTS}
    own = {k: _jsonable(getattr(options, k)) for k in own_options(name)}
    doc = {
        "benchmark": name,
        "command": command,
        "date": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "options": {**shared, **own},
        "figures": report.values,
        "targets": report.targets_dict(),
        "notes": report.notes,
        "skipped": report.skipped,
        "failed": report.failed,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    path = args.results_dir / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"results: {path}", flush=True)
    return report, path


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def main(argv: Sequence[str]) -> int:
    """Run the benchmarks named in ``argv``; 0 when none failed, 1 when one did, 2 on usage."""
    names = []
    for arg in argv:
        if arg.startswith("-"):
            break
        names.append(arg)
    if not names:
        print(_listing(), file=sys.stdout if argv[:1] in (["-h"], ["--help"]) else sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    args = parser_for([n for n in dict.fromkeys(names) if n in BENCHMARKS]).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from distinfer.distributed._ray import use_loopback

    use_loopback()  # before anything imports ray: its settings are read at import
    command = shlex.join([*PROG.split(), *argv])
    failed = False
    for name in dict.fromkeys(args.names):
        report, _ = run_one(name, args, command)
        failed = failed or bool(report.failed)
    return 1 if failed else 0
