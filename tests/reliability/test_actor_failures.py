"""Inference actors that die mid-job: their work goes to survivors or the restarted actor,
and every index is written exactly once; with nobody left the run fails fast."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from _jobs import colour_of, job_config, labels_of, write_job

from distinfer import ActorDiedError, RunConfig, RunSummary, read_results, run

ACTOR = "ray::InferenceActor"


def expected_labels(rows: list[dict[str, Any]]) -> list[str]:
    """The colour each image of ``write_images`` was drawn with."""
    return [colour_of(int(Path(r["source"]).stem[3:])) for r in rows]


def test_a_killed_actor_loses_nothing_and_duplicates_nothing(
    ray_session: Any,
    images: Path,
    clean_rows: list[dict[str, Any]],
    read_rows: Any,
    processes: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = processes.titled(os.getpid(), ACTOR)  # actors of earlier tests, on their way out
    killed: list[int] = []

    def kill_one_actor_mid_job(summary: RunSummary, total: int | None) -> None:
        if killed or summary.processed < 40:
            return
        busy = processes.titled(os.getpid(), ACTOR + ".process") - before
        if busy:
            killed.append(min(busy))
            os.kill(killed[0], signal.SIGKILL)

    config = RunConfig.parse(
        job_config(
            tmp_path,
            input={"images": str(images)},
            output={"rows_per_part": 16},
            cluster={"actors_per_node": 2, "max_actor_restarts": 1},
        )
    )
    with caplog.at_level(logging.WARNING, logger="distinfer"):
        summary = run(config, progress=kill_one_actor_mid_job)

    assert killed, "no inference actor was busy to be killed"
    assert any("lost unit" in r.message for r in caplog.records)  # in flight when it died
    rows = read_results(tmp_path / "results").to_pylist()
    assert [r["index"] for r in rows] == list(range(160))
    assert summary.total == 160 and summary.processed == 160 and summary.errors == 0
    assert read_rows(tmp_path / "results") == clean_rows
    assert labels_of(rows) == expected_labels(rows)


def test_with_no_actor_left_the_run_fails_fast_instead_of_hanging(
    ray_session: Any, images: Path, processes: Any, tmp_path: Path
) -> None:
    before = processes.titled(os.getpid(), ACTOR)
    killed: list[int] = []

    def kill_the_only_actor(summary: RunSummary, total: int | None) -> None:
        actors = processes.titled(os.getpid(), ACTOR) - before
        if not killed and summary.processed >= 8 and actors:
            killed.extend(actors)
            processes.end(actors)

    config = RunConfig.parse(
        job_config(
            tmp_path,
            input={"images": str(images)},
            output={"rows_per_part": 16},
            cluster={"actors_per_node": 1, "max_actor_restarts": 0},
        )
    )
    started = time.monotonic()
    with pytest.raises(ActorDiedError, match="none could be restarted"):
        run(config, progress=kill_the_only_actor)
    assert killed and time.monotonic() - started < 30
    # what was committed stays, for a rerun to resume from
    manifest = json.loads((tmp_path / "results" / "_manifest.json").read_text())
    assert not manifest["finished"]


NODE_REMOVAL = textwrap.dedent("""
    import json, sys
    from ray.cluster_utils import Cluster
    import ray
    from distinfer import RunConfig, run

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
    removed = []

    def remove_the_worker_node(summary, total):
        if not removed and any(name.startswith(worker.node_id[:12])
                               for name in summary.nodes) and summary.processed >= 40:
            removed.append(worker.node_id[:12])
            cluster.remove_node(worker)

    summary = run(RunConfig.load(sys.argv[1]), progress=remove_the_worker_node)
    print(json.dumps({"removed": removed, "nodes": summary.nodes, "total": summary.total,
                      "errors": summary.errors,
                      "events": [(e.node, e.event) for e in summary.node_events]}))
    ray.shutdown()
    cluster.shutdown()
""")


def test_a_removed_node_hands_its_work_to_the_surviving_node(
    images: Path,
    clean_rows: list[dict[str, Any]],
    read_rows: Any,
    processes: Any,
    cli: Any,
    tmp_path: Path,
) -> None:
    # A process holds one Ray connection, and this one holds the suite's: the
    # two-node cluster runs in a subprocess.
    config = write_job(
        tmp_path,
        input={"images": str(images)},
        output={"rows_per_part": 16},
        cluster={"units_in_flight_per_actor": 2},
    )
    script = tmp_path / "two_nodes.py"
    script.write_text(NODE_REMOVAL)
    env = {**cli.env(), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # the cluster on loopback
    child = subprocess.Popen(
        [sys.executable, str(script), str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = child.communicate(timeout=150)
    finally:
        processes.end(processes.descendants(child.pid))
        child.kill()
    assert child.returncode == 0, err[-3000:]
    report = json.loads(out.strip().splitlines()[-1])
    assert report["removed"], "the worker node got no work before the run ended"
    assert set(report["nodes"]) - set(report["removed"])  # a survivor did the rest
    rows = read_results(tmp_path / "results").to_pylist()
    assert [r["index"] for r in rows] == list(range(160))
    assert report["errors"] == 0
    assert read_rows(tmp_path / "results") == clean_rows
    assert [e for e in report["events"] if e[1] == "left"] == [[report["removed"][0], "left"]]
