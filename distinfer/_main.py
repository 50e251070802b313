"""The ``distinfer`` command line: run, validate, submit, export, bench.

Exit codes: 0 every item succeeded; 1 some items failed (or a worker/output
error); 2 bad configuration or usage; 130 interrupted (Ctrl-C; rerun to resume).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from ._config import RunConfig
from ._errors import (
    ConfigError,
    DistinferError,
    ModelError,
    OutputError,
    StorageUnavailableError,
)

EXIT_OK, EXIT_ITEMS_FAILED, EXIT_CONFIG = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


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
    from ._locations import check_access

    cfg = _load(config, overrides)
    try:
        check_access(cfg.locations)  # object storage: one cheap request per location
        cfg.model.build_task(cfg.locations.model)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    except ModelError as exc:
        click.echo(f"error: model: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    click.echo(f"{config}: ok")


@main.command()
@click.argument("path", type=click.Path(dir_okay=False), default="job.yaml")
def init(path: str) -> None:
    """Write a commented job file to start from at PATH (default: job.yaml)."""
    from ._starter import STARTER

    try:
        with open(path, "x", encoding="utf-8") as f:
            f.write(STARTER)
    except FileExistsError:
        click.echo(f"error: {path} exists; give another path", err=True)
        sys.exit(EXIT_CONFIG)
    except OSError as exc:
        click.echo(f"error: cannot write {path}: {exc.strerror or exc}", err=True)
        sys.exit(EXIT_CONFIG)
    click.echo(f"wrote {path}: edit model, input and output, then `distinfer run {path}`")


@main.command("demo-data")
@click.argument("folder", type=click.Path(file_okay=False), default="out/demo/inputs")
@click.option("--pages", type=int, default=24, show_default=True)
@click.option("--frames", type=int, default=90, show_default=True)
def demo_data(folder: str, pages: int, frames: int) -> None:
    """Write the demo's generated inputs (document pages and a video) into FOLDER."""
    from ._demo import write_demo_inputs

    click.echo(f"demo inputs in {write_demo_inputs(folder, pages, frames)}")


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@set_option
@click.option("--overwrite", is_flag=True, help="Replace a finished or different output.")
@click.option(
    "--stats-json",
    type=click.Path(dir_okay=False),
    help="Write the run's summary to this file as JSON (also when it fails).",
)
def run(config: str, overrides: tuple[str, ...], overwrite: bool, stats_json: str | None) -> None:
    """Run the job described by CONFIG (embedded local Ray, or cluster.address)."""
    from .distributed._driver import run as run_job
    from .distributed._progress import Progress

    cfg = _load(config, overrides)
    out = cfg.locations.parquet.uri
    if stats_json is not None and not Path(stats_json).resolve().parent.is_dir():
        click.echo(f"error: --stats-json: the folder of {stats_json} does not exist", err=True)
        sys.exit(EXIT_CONFIG)

    def fail(code: int, message: str, **facts: object) -> NoReturn:
        click.echo(message, err=True)
        if stats_json is not None:
            _write_stats(stats_json, {"finished": False, "error": message, **facts})
        sys.exit(code)

    try:
        summary = run_job(cfg, overwrite=overwrite, progress=Progress(mode=cfg.cluster.progress))
    except KeyboardInterrupt as exc:
        committed = getattr(exc, "committed_until", None)
        done = f"{committed} items committed" if committed is not None else "what was committed"
        fail(
            EXIT_INTERRUPTED,
            f"\ninterrupted: {done} in {out} stays; rerun the same command to resume from there",
            committed_until=committed,
        )
    except ModelError as exc:
        fail(EXIT_CONFIG, f"error: model: {exc}")
    except ConfigError as exc:
        fail(EXIT_CONFIG, f"error: {exc}")
    except DistinferError as exc:
        fail(EXIT_ITEMS_FAILED, f"error: {exc}{_resume_hint(exc)}")
    if stats_json is not None:
        _write_stats(stats_json, {**summary.to_dict(), "results": out})
    if summary.aborted:
        click.echo(
            f"aborted: {summary.aborted}; output so far in {out} (rerun to resume)", err=True
        )
        sys.exit(EXIT_ITEMS_FAILED)
    nodes = ", ".join(f"{n}: {int(v['items'])}" for n, v in sorted(summary.nodes.items()))
    click.echo(
        f"done: {summary.total} items ({summary.processed} this run, {summary.resumed_from} "
        f"resumed), {summary.errors} errors, {summary.items_per_s:.1f} items/s "
        f"in {summary.elapsed_s:.1f} s; per node: {nodes or '-'}; "
        f"nodes: {summary.describe_nodes()}; results: {out}"
    )
    for sample in summary.error_samples[:5]:
        click.echo(f"  error: {sample}", err=True)
    sys.exit(EXIT_ITEMS_FAILED if summary.errors else EXIT_OK)


def _write_stats(path: str, data: dict[str, Any]) -> None:
    from .distributed._summary import write_json

    try:
        write_json(path, data)
    except OSError as exc:
        click.echo(f"error: cannot write {path}: {exc.strerror or exc}", err=True)


def _resume_hint(exc: DistinferError) -> str:
    """What to do after the store stayed away, or the output lock was lost: rerun."""
    if isinstance(exc, StorageUnavailableError | OutputError) and "rerun" not in str(exc):
        return "; the run stopped, resumable: rerun the same command to finish it exactly once"
    return ""


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
    from .distributed._submit import relative_outputs, submit_job

    cfg = _load(config, overrides)
    for key, value in relative_outputs(cfg):
        click.echo(
            f"warning: {key}: {value} is a relative local path: on the cluster it lands in "
            "the job's unpacked working_dir on the node that runs the job's driver, and is "
            "deleted with the Ray session; use a URI (s3://...) or an absolute path on a "
            "filesystem the nodes share",
            err=True,
        )
    try:
        code = submit_job(
            cfg, Path(config), overrides, address=address, follow=follow, overwrite=overwrite
        )
    except DistinferError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ITEMS_FAILED)
    sys.exit(code)


@main.command()
@click.argument("results", type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["coco", "jsonl", "csv"]),
    required=True,
    help="coco: COCO detection JSON; jsonl: one object per item; csv: one row per detection.",
)
@click.option("-o", "--output", required=True, type=click.Path(), help="The file to write.")
@click.option("--partial", is_flag=True, help="Export the committed items of an unfinished run.")
@click.option(
    "--categories",
    metavar="NAME,...",
    default="",
    help="coco: give these labels the category ids 1, 2, ... (others follow as first seen).",
)
def export(results: str, fmt: str, output: str, partial: bool, categories: str) -> None:
    """Write the results folder RESULTS (a run's output.parquet) as COCO JSON, JSON Lines or CSV.

    Failed items are kept: listed under "errors" in COCO, rows with the error column
    set in JSON Lines and CSV. Exit codes: 0 written (even with failed items in
    RESULTS); 1 reading or writing failed; 2 bad usage or an unfinished run.
    """
    from .sinks import export_results

    names = [name.strip() for name in categories.split(",") if name.strip()]
    try:
        summary = export_results(results, fmt, output, partial=partial, categories=names)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    except DistinferError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ITEMS_FAILED)
    if not summary.finished:
        click.echo(
            f"note: {results} holds an unfinished run; exported the {summary.items} items "
            "committed so far",
            err=True,
        )
    click.echo(
        f"exported {summary.items} items ({summary.errors} failed, {summary.detections} "
        f"detections) to {summary.path}"
    )
    if summary.errors:
        where = 'under "errors"' if fmt == "coco" else "as rows with the error column set"
        click.echo(f"{summary.errors} of {summary.items} items failed, listed {where}:", err=True)
        for index, source, error in summary.error_samples:
            click.echo(f"  error: item {index} {source}: {error}", err=True)


@main.command()
@click.option(
    "--modes",
    default="limit,plain,sync,async,video",
    show_default=True,
    help="Comma-separated: limit, plain, sync, async, video (engine, in this process); "
    "host (CPU per page with inference replayed, GIL held per page with py-spy); "
    "distributed (one distinfer run of the same pages); or engine, all.",
)
@click.option(
    "--model", default="ppocr-det", show_default=True, help="A bundled model name or a model file."
)
@click.option(
    "--images",
    "num_images",
    type=int,
    default=200,
    show_default=True,
    help="Generated 1280x960 document JPEGs to run on.",
)
@click.option(
    "--images-dir",
    type=click.Path(exists=True, file_okay=False),
    help="Run on the images of this folder instead.",
)
@click.option(
    "--seconds",
    type=float,
    default=10.0,
    show_default=True,
    help="Duration of each bare-model limit measurement.",
)
@click.option(
    "--repeat",
    type=int,
    default=1,
    show_default=True,
    help=(
        "Rounds of the engine modes, interleaved, medians reported (limit: the highest); "
        "runs of distributed, each between limit measurements, the median run reported."
    ),
)
@click.option("--device", default="CPU", show_default=True, help="OpenVINO device.")
@set_option
@click.option("--json", "as_json", is_flag=True, help="End with one JSON object on the last line.")
def bench(
    modes: str,
    model: str,
    num_images: int,
    images_dir: str | None,
    seconds: float,
    repeat: int,
    device: str,
    overrides: tuple[str, ...],
    as_json: bool,
) -> None:
    """Measure your model on this machine: every figure as a ratio to the bare model's limit.

    --set model.openvino.KEY=VALUE compiles every mode, the limit too, with that
    OpenVINO property (e.g. INFERENCE_NUM_THREADS=1).

    The comparisons with Ray Data and the project's instruments are in the
    repository's benchmarks/ folder (python benchmarks/run.py --help).
    """
    from .bench import bench_cli

    sys.exit(
        bench_cli(
            modes,
            images_dir,
            as_json,
            model=model,
            images=num_images,
            seconds=seconds,
            repeat=repeat,
            device=device,
            overrides=tuple(overrides),
        )
    )


if __name__ == "__main__":  # pragma: no cover
    main()
