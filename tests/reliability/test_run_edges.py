"""The edges of a run, as a user meets them: a cluster address where nothing answers,
Ctrl-C mid-job, a total shown long before the end, worker logs on the console."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from _jobs import job_config, write_images, write_job

from distinfer import RunConfig, RunSummary, read_results, run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("address", ["127.0.0.1:{port}", "ray://127.0.0.1:{port}", "auto"])
def test_a_cluster_that_is_not_there_is_named_with_its_key_and_no_traceback(
    tmp_path: Path, cli: Any, address: str
) -> None:
    write_images(tmp_path / "imgs", 2)
    config = write_job(tmp_path, input={"images": str(tmp_path / "imgs")})
    address = address.format(port=free_port())
    # No cluster recorded there (the suite's own Ray runs, but was not `ray start`ed).
    env = {**cli.env(), "RAY_TMPDIR": str(tmp_path / "ray")}
    (tmp_path / "ray").mkdir()
    stats = tmp_path / "stats.json"
    stats.write_text('{"finished": true, "note": "an earlier run\'s"}')
    done = subprocess.run(
        cli.command(
            "run", str(config), "--set", f"cluster.address={address}", "--stats-json", str(stats)
        ),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,  # Ray alone retries such an address for about a minute
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "cluster.address" in done.stderr and "Traceback" not in done.stderr
    assert ("no running Ray cluster" if address == "auto" else "nothing answers") in done.stderr
    written = json.loads(stats.read_text())  # the earlier run's file does not stand
    assert written["finished"] is False and "cluster.address" in written["error"]


def test_stats_json_holds_the_summary_of_an_aborted_run(tmp_path: Path, cli: Any) -> None:
    write_images(tmp_path / "imgs", 40)
    for i in range(30):  # most inputs are not images: the error budget runs out
        (tmp_path / "imgs" / f"bad{i:02d}.png").write_bytes(b"not a PNG")
    config = write_job(
        tmp_path, input={"images": str(tmp_path / "imgs")}, cluster={"max_error_fraction": 0.2}
    )
    stats = tmp_path / "stats.json"
    done = cli.run("run", str(config), "--stats-json", str(stats), timeout_s=120)
    assert done.returncode == 1 and "aborted" in done.stderr, done.stderr[-2000:]
    summary = json.loads(stats.read_text())
    assert summary["finished"] is True and "max_error_fraction" in summary["aborted"]
    assert summary["errors"] > 0.2 * summary["processed"] and summary["error_samples"]
    assert summary["node_count"] == 1 and summary["node_events"][0]["event"] == "started"
    assert summary["results"] == str(tmp_path / "results")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".stats")] == []


def committed_until(results: Path) -> int:
    try:
        return int(json.loads((results / "_manifest.json").read_text())["committed_until"])
    except (OSError, ValueError):
        return 0


def test_ctrl_c_says_what_is_committed_and_the_same_command_resumes(
    tmp_path: Path, cli: Any, processes: Any
) -> None:
    total = 300
    write_images(tmp_path / "imgs", total)
    config = write_job(
        tmp_path,
        input={"images": str(tmp_path / "imgs")},
        output={"rows_per_part": 10},
        cluster={"items_per_unit": 2},
    )
    results = tmp_path / "results"
    # As a terminal does: SIGINT to the whole foreground process group.
    child = subprocess.Popen(
        cli.command("run", str(config)),
        env=cli.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    tree: dict[int, str] = {}
    try:
        processes.follow_until(child, lambda: committed_until(results) >= 40, tree)
        os.killpg(child.pid, signal.SIGINT)
        _, err = child.communicate(timeout=60)
    finally:
        child.kill()
        processes.end(tree)
    assert child.returncode == 130, err[-3000:]
    said = re.search(r"interrupted: (\d+) items committed", err)
    assert said is not None or "interrupted: what was committed" in err, err[-3000:]
    assert "rerun the same command to resume" in err and "Traceback" not in err
    committed = committed_until(results)
    if said is not None:
        assert int(said.group(1)) == committed
    assert 40 <= committed < total

    rerun = cli.run("run", str(config), timeout_s=120)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"({total - committed} this run, {committed} resumed)" in rerun.stdout
    assert read_results(results).column("index").to_pylist() == list(range(total))


def test_the_total_reaches_the_progress_long_before_the_run_ends(
    ray_session: Any, tmp_path: Path
) -> None:
    total = 200
    write_images(tmp_path / "imgs", total)
    config = RunConfig.parse(
        job_config(
            tmp_path, input={"images": str(tmp_path / "imgs")}, cluster={"items_per_unit": 2}
        )
    )
    seen: list[tuple[int, int | None]] = []

    def progress(summary: RunSummary, known: int | None) -> None:
        seen.append((summary.processed, known))

    run(config, progress=progress)

    assert seen[-1] == (total, total)
    early = [processed for processed, known in seen[:-1] if known == total]
    assert early and min(early) < total / 2  # known while most of the work was ahead


def test_worker_logs_reach_the_console_once_naming_the_node_and_v_raises_their_level(
    tmp_path: Path, cli: Any
) -> None:
    write_images(tmp_path / "imgs", 40)
    config = write_job(tmp_path, input={"images": str(tmp_path / "imgs")})

    quiet = cli.run("run", str(config), "--overwrite", timeout_s=120)
    verbose = cli.run("-v", "run", str(config), "--overwrite", timeout_s=120)

    assert quiet.returncode == 0 and verbose.returncode == 0, verbose.stderr[-3000:]
    compiled = re.findall(r"\[(\w+)\] distinfer\.engine\._engine: compiled", verbose.stderr)
    assert len(compiled) == 1  # one actor on this node, its record shown once
    assert "compiled" not in quiet.stderr  # an INFO record: forwarded only with -v
