"""``distinfer run`` killed with SIGKILL mid-job: the same command resumes from the
manifest, recomputing only what was not committed; a finished output is refused
(exit 2) unless ``--overwrite``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _jobs import colour_of, labels_of, write_images, write_job

from distinfer import read_results

TOTAL = 400
KILL_AFTER_ROWS = 40


@dataclass
class Resumed:
    config: Path
    results: Path
    committed_at_kill: int
    parts_at_kill: dict[str, tuple[int, int]]  # file -> (inode, mtime_ns)
    rerun: subprocess.CompletedProcess[str]


def parts(results: Path) -> dict[str, tuple[int, int]]:
    manifest = json.loads((results / "_manifest.json").read_text())
    stats = {p["file"]: (results / p["file"]).stat() for p in manifest["parts"]}
    return {name: (st.st_ino, st.st_mtime_ns) for name, st in stats.items()}


def committed_until(results: Path) -> int:
    try:
        return int(json.loads((results / "_manifest.json").read_text())["committed_until"])
    except (OSError, ValueError):
        return 0


@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory, cli: Any, processes: Any) -> Resumed:
    """A run killed once ``KILL_AFTER_ROWS`` rows are committed, then run again."""
    tmp = tmp_path_factory.mktemp("driver-failure")
    write_images(tmp / "imgs", TOTAL)
    config = write_job(
        tmp,
        input={"images": str(tmp / "imgs")},
        output={"rows_per_part": 10},
        cluster={"items_per_unit": 2},
    )
    results = tmp / "results"
    child = cli.start("run", str(config))
    tree: dict[int, str] = {}
    try:
        processes.follow_until(child, lambda: committed_until(results) >= KILL_AFTER_ROWS, tree)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    finally:
        child.kill()
        child.communicate()
        # Ray's GCS and raylet share the driver's fate; its agents outlive it by a
        # minute or so. End what this run started.
        processes.end(tree)
    manifest = json.loads((results / "_manifest.json").read_text())
    assert not manifest["finished"] and manifest["committed_until"] < TOTAL
    committed, before = manifest["committed_until"], parts(results)
    rerun = cli.run("run", str(config), timeout_s=120)  # a stale Ray must not make it hang
    return Resumed(config, results, committed, before, rerun)


def test_rerunning_after_a_killed_driver_computes_only_what_was_not_committed(
    resumed: Resumed,
) -> None:
    rerun, committed = resumed.rerun, resumed.committed_at_kill
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = f"done: {TOTAL} items ({TOTAL - committed} this run, {committed} resumed)"
    assert summary in rerun.stdout
    rows = read_results(resumed.results).to_pylist()
    assert [r["index"] for r in rows] == list(range(TOTAL))
    assert labels_of(rows) == [colour_of(int(Path(r["source"]).stem[3:])) for r in rows]
    after = parts(resumed.results)
    for name, identity in resumed.parts_at_kill.items():
        assert after[name] == identity, f"{name} was rewritten"
    names = sorted(p.name for p in resumed.results.iterdir())
    assert names == sorted([*after, "_lock", "_manifest.json"])  # no leftovers of the killed run


def test_a_finished_output_is_refused_without_overwrite(resumed: Resumed, cli: Any) -> None:
    assert resumed.rerun.returncode == 0
    refused = cli.run("run", str(resumed.config), without_ray=True)  # refused before Ray
    assert refused.returncode == 2
    assert "already holds a finished run" in refused.stderr and "--overwrite" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_overwrite_starts_a_finished_output_afresh(resumed: Resumed, cli: Any) -> None:
    before = parts(resumed.results)
    again = cli.run("run", str(resumed.config), "--overwrite")
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"({TOTAL} this run, 0 resumed)" in again.stdout
    after = parts(resumed.results)
    assert len(read_results(resumed.results)) == TOTAL
    assert not set(before.values()) & set(after.values())  # every part written anew
