"""One ``distinfer bench`` run: the pages, the modes asked for, the report; the CLI's body."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ._engine_modes import engine_modes
from ._options import ENGINE_MODES, PAGE_MODES, BenchOptions, parse_modes
from ._pages import page_images
from ._report import BenchSkipped, Echo, Report, guard


def run_bench(options: BenchOptions, echo: Echo | None = None) -> Report:
    """Run the modes of ``options``; a mode that cannot run is recorded with the reason.

    ``echo`` receives progress lines (the CLI passes stderr); the report renders
    the table and the JSON.

    >>> report = run_bench(BenchOptions(modes=("limit", "sync"), images=4, seconds=1))
    ... # doctest: +SKIP
    >>> report.values["sync_fps"] / report.values["limit_fps"]      # doctest: +SKIP
    0.71
    """
    say = echo or (lambda line: None)
    report = Report(options)
    report.values.update(model=options.model, device=options.device, cores=_cores())
    with tempfile.TemporaryDirectory(prefix="distinfer-bench-") as tmp:
        workdir = Path(tmp)
        needs_pages = set(options.modes) & set(PAGE_MODES)
        folder: Path | None = None
        images: list[bytes] = []
        if needs_pages:
            say(f"preparing {options.images_dir or f'{options.images} generated pages'} ...")
            try:
                folder, images = page_images(workdir, options.images, options.images_dir)
                report.values["images"] = len(images)
            except BenchSkipped as exc:
                report.skipped.update(dict.fromkeys(needs_pages, str(exc)))
        engine = [m for m in ENGINE_MODES if m in options.modes and m not in report.skipped]
        if engine:
            guard(report, ", ".join(engine), say, lambda: engine_modes(options, report, images))
        if "host" in options.modes and "host" not in report.skipped:
            from ._host import host_mode

            guard(report, "host", say, lambda: host_mode(options, report, images))
        if "distributed" in options.modes and folder is not None:
            from ._distributed import distributed_mode

            pages = folder
            guard(
                report,
                "distributed",
                say,
                lambda: distributed_mode(options, report, pages, workdir),
            )
    return report


def _cores() -> int:
    from ..engine._threads import available_cores

    return available_cores()


def bench_cli(modes: str, images_dir: str | None, as_json: bool, **options: Any) -> int:
    """What ``distinfer bench`` does: run, print the table (and the JSON); the exit code.

    ``options`` are the other ``BenchOptions`` fields. Exit 0 when every mode ran or
    was skipped with a reason (targets not met are reported, not failures); 1 when
    a mode failed. Bad options raise ``click.UsageError`` (exit 2).
    """
    import click

    try:
        bench_options = BenchOptions(
            modes=parse_modes(modes),
            images_dir=Path(images_dir) if images_dir else None,
            **options,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    report = run_bench(bench_options, echo=lambda line: click.echo(line, err=True))
    click.echo(report.render())
    if as_json:
        click.echo(report.to_json())
    return 1 if report.failed else 0
