"""storage: S3 against a local disk: CPU per page of a run, a big prefix's first result.

A local S3 server (moto) runs in a process of its own: its CPU is reported
beside distinfer's and never counted in it (on a small machine it competes
with inference, which says nothing about distinfer). Linux only (/proc).

- Storage cost: the ``--images`` detection job (``--model``, generated
  1280x960 pages) run twice in one local Ray: inputs and results on the S3
  server, then on a local disk. Steady rate of each, and the CPU per page of
  all of distinfer's processes (the driver, Ray's daemons, the actors, the
  collector; the server excluded): target S3 / local <= 1.15.
- Listing: ``--objects`` tiny PNGs under one prefix and the same files in a
  local folder, each run of ``ppocr-cls`` in a fresh process: the time from the
  run's start to its first result (target: S3 within 2 s of the local folder),
  and the driver's peak RSS against a run of ``--small-objects`` objects
  (target <= 1.2).

The child run: ``python -m benchmarks.storage IMAGES OUT MODEL [--set K=V ...]``
prints its figures as one JSON line.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distinfer.bench import BenchSkipped, Echo, Report, page_images, timed_run

from ._moto_server import ROOT, TITLE, MotoServer
from ._proc import ProcessWatch
from .memory import tiny_images

DEFAULTS: dict[str, Any] = {
    "model": "ppocr-det",
    "images": 200,
    "images_dir": None,
    "repeat": 1,
    "overrides": (),
}
BUCKET = "bench"
#: Credentials for the local server only (it checks none); real ones are never sent there.
SERVER_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_REGION": "us-east-1",
}
LISTING_MODEL = "ppocr-cls"
#: The storage-cost job's inputs and results on the server.
S3_COST_JOB = (f"s3://{BUCKET}/pages/", f"s3://{BUCKET}/out")
CHILD_TIMEOUT_S = 3600
UPLOAD_THREADS = 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--objects", type=int, default=50_000, help="Objects under the listed prefix (50000)."
    )
    parser.add_argument(
        "--small-objects",
        type=int,
        default=1_000,
        help="Objects of the run the large one's driver memory is compared with (1000).",
    )
    parser.add_argument(
        "--parts",
        default="cost,listing",
        help="Which parts to run, comma-separated: cost, listing (default both).",
    )


def run(args: argparse.Namespace, report: Report, workdir: Path, say: Echo) -> None:
    if not Path("/proc/self/status").exists():
        raise BenchSkipped("CPU and peak RSS are read from /proc (Linux only)")
    try:
        import moto  # noqa: F401
    except ImportError:
        raise BenchSkipped("needs moto's S3 server: pip install 'moto[server]'") from None
    os.environ.update(SERVER_CREDENTIALS)  # before Ray starts: its workers inherit them
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    with MotoServer() as server:
        server.create_bucket(BUCKET)
        if "cost" in parts:
            storage_cost(args, report, workdir, server, say)
        if "listing" in parts:
            listing(args, report, workdir, server, say)


def _upload(server: MotoServer, folder: Path, prefix: str) -> int:
    from distinfer.storage import StorageOptions, resolve_location

    bucket = resolve_location(f"s3://{BUCKET}/", options=StorageOptions(endpoint=server.endpoint))
    paths = sorted(p for p in folder.rglob("*") if p.is_file())

    def put(path: Path) -> None:
        bucket.fs.write(f"{prefix}/{path.relative_to(folder)}", path.read_bytes())

    with concurrent.futures.ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        list(pool.map(put, paths))
    return len(paths)


def storage_cost(
    args: argparse.Namespace, report: Report, workdir: Path, server: MotoServer, say: Echo
) -> None:
    """The same job on S3 and on a local disk, ``--repeat`` rounds, medians reported."""
    from distinfer.distributed._ray import ray_session

    pages, images = page_images(workdir, args.images, args.images_dir)
    _upload(server, pages, "pages")
    say(f"storage: {len(images)} pages on the S3 server; running ...")
    s3_overrides = (*args.overrides, f"storage.endpoint={server.endpoint}")
    runs: dict[str, list[dict[str, float]]] = {"local": [], "s3": []}
    by_title: dict[str, list[dict[str, float]]] = {"local": [], "s3": []}  # ms CPU/page
    with ray_session(None):  # one local Ray for every run: the same daemons, warm workers
        for _ in range(args.repeat):
            for where in ("local", "s3"):
                source, out = (pages, workdir / "out") if where == "local" else S3_COST_JOB
                overrides = s3_overrides if where == "s3" else tuple(args.overrides)
                figures = timed_run(args.model, source, out, overrides, ProcessWatch())
                cpu = figures.cpu_s
                server_s = cpu.get(TITLE, 0.0)
                runs[where].append(
                    {
                        "items_per_s": figures.steady_items_per_s or figures.wall_items_per_s,
                        "cpu_ms": 1e3 * (sum(cpu.values()) - server_s) / figures.items,
                        "server_cpu_ms": 1e3 * server_s / figures.items,
                        "wall_s": figures.wall_s,
                    }
                )
                by_title[where].append(
                    {t: round(1e3 * v / figures.items, 2) for t, v in sorted(cpu.items())}
                )
    for where, label in (("local", "local disk"), ("s3", "S3 (moto)")):
        median = {k: statistics.median(r[k] for r in runs[where]) for k in runs[where][0]}
        report.add(
            "storage-cost",
            f"storage_{where}_items_per_s",
            median["items_per_s"],
            f"pages/s steady, {label}",
        )
        report.add(
            "storage-cost",
            f"storage_{where}_cpu_ms_per_item",
            median["cpu_ms"],
            f"ms CPU/page, distinfer, {label}",
        )
        report.values[f"storage_{where}_wall_s"] = median["wall_s"]
        if where == "s3":
            report.add(
                "storage-cost",
                "storage_server_cpu_ms_per_item",
                median["server_cpu_ms"],
                "ms CPU/page, the S3 server (not counted)",
            )
    report.values["storage_runs"] = runs
    report.values["storage_cpu_ms_per_item_by_process"] = by_title
    report.target(
        "storage_s3_vs_local_cpu",
        "storage_s3_cpu_ms_per_item",
        "storage_local_cpu_ms_per_item",
        1.15,
        "<=",
    )
    report.notes["storage-cost"] = (
        f"{args.model} on {len(images)} generated pages, one local Ray for both; "
        "distinfer's CPU is every process of the run but the S3 server's"
    )


def listing(
    args: argparse.Namespace, report: Report, workdir: Path, server: MotoServer, say: Echo
) -> None:
    """First result and driver memory: the large prefix, the same files locally, a small one."""
    sizes = {"large": args.objects, "small": args.small_objects}
    endpoint = f"--set=storage.endpoint={server.endpoint}"
    results: dict[str, dict[str, Any]] = {}
    for name, count in sizes.items():
        folder = workdir / f"tiny-{count}"
        started = time.perf_counter()
        tiny_images(folder, count)
        _upload(server, folder, f"tiny-{count}")
        say(f"storage: {count} objects written in {time.perf_counter() - started:.0f} s")
        runs = [("s3", f"s3://{BUCKET}/tiny-{count}/", f"s3://{BUCKET}/tiny-out-{count}")]
        if name == "large":
            runs.append(("local", str(folder), str(workdir / f"tiny-out-{count}")))
        for where, source, out in runs:
            say(f"storage: listing run, {count} objects, {where} ...")
            results[f"{where}_{count}"] = _run_child(source, out, endpoint)
    large, small = args.objects, args.small_objects
    s3, local, s3_small = results[f"s3_{large}"], results[f"local_{large}"], results[f"s3_{small}"]
    report.add(
        "listing",
        f"listing_local_first_result_s_{large}",
        local["first_result_s"],
        "s to 1st result, local folder",
    )
    report.add(
        "listing",
        f"listing_s3_first_result_s_{large}",
        s3["first_result_s"],
        "s to 1st result, S3 prefix",
    )
    delta = s3["first_result_s"] - local["first_result_s"]
    report.add("listing", "listing_first_result_delta_s", delta, "s, S3 - local")
    report.add(
        "listing", f"listing_s3_driver_mb_{small}", s3_small["driver_mb"], "MB peak RSS, driver"
    )
    report.add("listing", f"listing_s3_driver_mb_{large}", s3["driver_mb"], "MB peak RSS, driver")
    for key, figures in results.items():
        report.values[f"listing_{key}"] = figures
    report.target("listing_first_result_delta_s", "listing_first_result_delta_s", None, 2.0, "<=")
    report.target(
        "listing_s3_driver_ratio",
        f"listing_s3_driver_mb_{large}",
        f"listing_s3_driver_mb_{small}",
        1.2,
        "<=",
    )
    report.notes["listing"] = (
        f"{LISTING_MODEL} on 32x32 PNGs, each run in a fresh process with its own embedded "
        "Ray; the first result is timed from the run's start (Ray's start included in both)"
    )


def _run_child(source: str, out: str, *overrides: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.storage", source, out, LISTING_MODEL, *overrides]
    done = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
        env={**os.environ, **SERVER_CREDENTIALS},
    )
    if done.returncode != 0:
        raise RuntimeError(f"listing run of {source} failed: {done.stderr.strip()[-2000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def listing_child(source: str, out: str, model: str, overrides: Sequence[str]) -> dict[str, Any]:
    """One run in this (fresh) process: the first result and the driver's peak RSS."""
    figures = timed_run(model, source, out, overrides, ProcessWatch(0.1))
    return {
        "items": figures.items,
        "wall_s": figures.wall_s,
        "first_result_s": figures.first_result_s,
        "items_per_s": figures.steady_items_per_s or figures.wall_items_per_s,
        "driver_mb": figures.peak_mb.get("driver"),
    }


def _child_main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.storage")
    parser.add_argument("source")
    parser.add_argument("out")
    parser.add_argument("model")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)
    print(json.dumps(listing_child(args.source, args.out, args.model, args.overrides)))


if __name__ == "__main__":
    _child_main(sys.argv[1:])
