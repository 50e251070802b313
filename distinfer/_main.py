"""The ``distinfer`` command line: run, validate, submit, bench.

Exit codes: 0 every item succeeded; 1 some items failed (or a worker/output
error); 2 bad configuration or usage.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from ._config import RunConfig
from ._errors import ConfigError, DistinferError, ModelError

EXIT_OK, EXIT_ITEMS_FAILED, EXIT_CONFIG = 0, 1, 2


def _load(config: str, overrides: tuple[str, ...]) -> RunConfig:
    try:
        cfg = RunConfig.load(config, overrides)
        cfg.check_paths()
        return cfg
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_CONFIG)


set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY.PATH=VALUE",
    help="Override a config value, e.g. --set cluster.address=auto (repeatable).",
)


@click.group()
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="distinfer")
def main(verbose: int) -> None:
    """Ray-distributed inference for OpenVINO models over images and videos."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@set_option
def validate(config: str, overrides: tuple[str, ...]) -> None:
    """Check CONFIG (keys, types, paths, model) without running anything."""
    cfg = _load(config, overrides)
    try:
        cfg.model.build_task(cfg.base_dir)
    except ModelError as exc:
        click.echo(f"error: model: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    click.echo(f"{config}: ok")


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@set_option
@click.option("--overwrite", is_flag=True, help="Replace a finished or different output.")
def run(config: str, overrides: tuple[str, ...], overwrite: bool) -> None:
    """Run the job described by CONFIG (embedded local Ray, or cluster.address)."""
    from ._driver import run as run_job
    from ._progress import Progress

    cfg = _load(config, overrides)
    try:
        summary = run_job(cfg, overwrite=overwrite, progress=Progress(mode=cfg.cluster.progress))
    except ModelError as exc:
        click.echo(f"error: model: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    except DistinferError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ITEMS_FAILED)
    out = cfg.resolve(cfg.output.parquet)
    if summary.aborted:
        click.echo(
            f"aborted: {summary.aborted}; output so far in {out} (rerun to resume)", err=True
        )
        sys.exit(EXIT_ITEMS_FAILED)
    nodes = ", ".join(f"{n}: {int(v['items'])}" for n, v in sorted(summary.nodes.items()))
    click.echo(
        f"done: {summary.total} items ({summary.processed} this run, {summary.resumed_from} "
        f"resumed), {summary.errors} errors, {summary.items_per_s:.1f} items/s "
        f"in {summary.elapsed_s:.1f} s; per node: {nodes or '-'}; results: {out}"
    )
    for sample in summary.error_samples[:5]:
        click.echo(f"  error: {sample}", err=True)
    sys.exit(EXIT_ITEMS_FAILED if summary.errors else EXIT_OK)


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@set_option
@click.option("--address", required=True, help="Ray dashboard address, e.g. http://head:8265.")
@click.option("--follow/--no-follow", default=True, help="Stream the job's logs until it ends.")
@click.option("--overwrite", is_flag=True, help="Pass --overwrite to the job.")
def submit(
    config: str, overrides: tuple[str, ...], address: str, follow: bool, overwrite: bool
) -> None:
    """Run CONFIG as a Ray job on a cluster (token authentication is used as configured)."""
    from ._submit import submit_job

    cfg = _load(config, overrides)
    try:
        code = submit_job(
            cfg, Path(config), overrides, address=address, follow=follow, overwrite=overwrite
        )
    except DistinferError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ITEMS_FAILED)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
