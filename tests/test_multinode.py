"""Several Ray nodes on one machine (ray.cluster_utils.Cluster): every node works, on
local paths every node sees and on S3 alone.

The suite's shared Ray session lives in this process, and a process talks to
one Ray at a time, so the job runs in a subprocess attached to the cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _jobs import colour_of, job_config, labels_of, write_images, write_job, write_video
from _s3 import Bucket
from _s3_jobs import write_config, write_inputs

from distinfer import ConfigError, RunConfig, read_results
from distinfer.distributed._reach import check_nodes_reach, local_paths


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[Any]:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def run_cli(
    path: Path, *args: str, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "distinfer", "run", str(path), *args],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", **env},
        cwd=cwd,
    )


def test_every_node_gets_work_and_output_is_complete_and_ordered(
    two_nodes: Any, tmp_path: Path
) -> None:
    write_images(tmp_path / "imgs", 40)
    video = write_video(tmp_path / "clip.mp4", 30)
    config = write_job(
        tmp_path,
        input={"images": str(tmp_path / "imgs"), "videos": str(video), "video_segment_frames": 10},
        cluster={"address": two_nodes.address, "items_per_unit": 2, "units_in_flight_per_actor": 2},
    )
    done = run_cli(config)
    assert done.returncode == 0, done.stderr
    rows = read_results(tmp_path / "results").to_pylist()
    assert [r["index"] for r in rows] == list(range(70))
    assert labels_of(rows[:30]) == [colour_of(i) for i in range(30)]
    nodes = {r["node"] for r in rows}
    assert len(nodes) == 2, nodes
    assert all(r["error"] is None for r in rows)


def test_two_nodes_read_and_write_only_s3_and_both_do_work(
    two_nodes: Any, s3_bucket: Bucket, tmp_path: Path
) -> None:
    inputs = write_inputs(tmp_path / "files", s3_bucket)
    out = s3_bucket.uri("two-nodes")
    job = inputs.job(
        "s3",
        out,
        output={"overlays": f"{out}/overlays/"},
        cluster={"address": two_nodes.address, "items_per_unit": 2, "units_in_flight_per_actor": 2},
    )
    config = write_config(tmp_path / "job", job)
    (tmp_path / "cwd").mkdir()
    done = run_cli(config, cwd=tmp_path / "cwd", XDG_CACHE_HOME=str(tmp_path / "cache"))
    assert done.returncode == 1, done.stderr[-3000:]  # the list names one missing object
    rows = read_results(inputs.location(f"{out}/results")).to_pylist()
    assert [r["index"] for r in rows] == list(range(49))
    assert labels_of(rows[:20]) == [colour_of(i) for i in range(20)]
    assert [r["source"].rsplit("/", 1)[-1] for r in rows if r["error"]] == ["gone.png"]
    assert len({r["node"] for r in rows}) == 2  # both nodes read from S3 and did work
    assert len(inputs.keys("two-nodes/overlays/")) == 28  # written by the actors of both
    assert list((tmp_path / "cwd").iterdir()) == []


def test_a_node_that_cannot_see_a_local_path_stops_the_run_naming_it(
    ray_session: Any, tmp_path: Path
) -> None:
    write_images(tmp_path / "imgs", 1)
    config = RunConfig.parse(
        job_config(
            tmp_path,
            input={"images": [str(tmp_path / "imgs"), str(tmp_path / "only-on-the-driver/*.png")]},
            output={"overlays": str(tmp_path / "overlays")},
        )
    )
    assert [key for key, _ in local_paths(config.locations)] == [
        "model.path",
        "input.images[0]",
        "input.images[1]",
        "output.parquet",  # its _lock, which the driver creates before this check
        "output.overlays",
    ]
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "_lock").touch()
    (tmp_path / "overlays").mkdir()
    with pytest.raises(ConfigError) as info:  # the glob's folder exists on no node here
        check_nodes_reach(ray_session, config.locations)
    node = ray_session.get_runtime_context().get_node_id()[:12]
    assert info.value.key == "input.images[1]"
    assert f"node {node} " in str(info.value) and "only-on-the-driver" in str(info.value)
    assert "use a URI every node can reach" in str(info.value)
    (tmp_path / "only-on-the-driver").mkdir()
    check_nodes_reach(ray_session, config.locations)  # every path seen: no error


def test_a_node_that_joins_mid_run_gets_an_actor_and_work(tmp_path: Path) -> None:
    """One node at the start, a second added once rows are committed: its actor
    starts within seconds and takes work; every index is written once."""
    from ray.cluster_utils import Cluster

    write_images(tmp_path / "imgs", 3000)  # about 20 s on one node of this machine
    stats = tmp_path / "stats.json"
    config = write_job(
        tmp_path,
        input={"images": str(tmp_path / "imgs")},
        output={"rows_per_part": 10, "flush_interval_s": 0.2},
        cluster={"items_per_unit": 1, "units_in_flight_per_actor": 1, "progress": "lines"},
    )
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    lines: list[tuple[float, str]] = []  # (when, stderr line) of the job
    try:
        cluster.wait_for_nodes()
        command = ["run", str(config), "--stats-json", str(stats)]
        command += ["--set", f"cluster.address={cluster.address}"]
        child = subprocess.Popen(
            [sys.executable, "-m", "distinfer", *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"},
        )
        assert child.stdout is not None and child.stderr is not None
        stderr = child.stderr
        reader = threading.Thread(
            target=lambda: lines.extend((time.monotonic(), line) for line in stderr), daemon=True
        )
        reader.start()
        deadline = time.monotonic() + 120
        while not list((tmp_path / "results").glob("part-*.parquet")):
            assert child.poll() is None and time.monotonic() < deadline, lines[-20:]
            time.sleep(0.05)
        cluster.add_node(num_cpus=1)
        added = time.monotonic()
        child.wait(timeout=240)
        out = child.stdout.read()  # one line: it cannot have filled the pipe
        reader.join(timeout=10)
    finally:
        cluster.shutdown()
    err = "".join(line for _, line in lines)
    assert child.returncode == 0, err[-3000:]

    rows = read_results(tmp_path / "results").to_pylist()
    assert [r["index"] for r in rows] == list(range(3000))
    assert len({r["node"] for r in rows}) == 2
    joined = [t for t, line in lines if line.startswith("node ") and " joined: " in line]
    assert len(joined) == 1 and joined[0] - added < 30  # Ray sees it, a poll, an actor start
    summary = json.loads(stats.read_text())
    assert (summary["node_count"], summary["nodes_joined"], summary["nodes_left"]) == (2, 1, 0)
    assert [e["event"] for e in summary["node_events"]] == ["started", "joined"]
    assert "nodes: 2 (1 joined)" in out
