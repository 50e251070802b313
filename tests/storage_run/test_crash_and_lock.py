"""Crashes and concurrency with the output on S3: a driver killed with SIGKILL is resumed
exactly once by the same command; a second run is refused naming the first; a lock
nobody renews is taken over."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from _jobs import colour_of, labels_of, write_images
from _s3_jobs import Inputs, write_config
from click.testing import CliRunner

from distinfer import OutputError, RunConfig, read_results, run
from distinfer._main import main
from distinfer.storage import output_lock

TOTAL = 120
KILL_AFTER_ROWS = 30


def committed_until(inputs: Inputs, key: str) -> int:
    try:
        return int(json.loads(inputs.get(key))["committed_until"])
    except Exception:  # noqa: BLE001 - not written yet
        return 0


def etags(inputs: Inputs, prefix: str) -> dict[str, str]:
    s3 = inputs.bucket.client()
    listed = s3.list_objects_v2(Bucket=inputs.bucket.name, Prefix=prefix).get("Contents", [])
    return {o["Key"].removeprefix(prefix): o["ETag"] for o in listed}


@pytest.fixture(scope="module")
def many(inputs: Inputs, tmp_path_factory: pytest.TempPathFactory) -> str:
    """``TOTAL`` images under one prefix: a run long enough to be interrupted."""
    folder = tmp_path_factory.mktemp("many")
    for path in write_images(folder, TOTAL):
        inputs.bucket.put(f"many/{path.relative_to(folder)}", path.read_bytes())
    return f"{inputs.root('s3')}/many/"


def test_a_killed_driver_is_resumed_exactly_once_by_the_same_command(
    inputs: Inputs, many: str, ray_session: Any, cli: Any, processes: Any, tmp_path: Path
) -> None:
    root = inputs.root("s3")
    job = inputs.job(
        "s3",
        f"{root}/crash",
        input={"images": [many], "videos": []},
        output={"rows_per_part": 10},
        cluster={"items_per_unit": 2},
    )
    config = write_config(tmp_path / "job", job)
    child = cli.start("run", str(config), env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    tree: dict[int, str] = {}
    try:
        manifest = "crash/results/_manifest.json"
        processes.follow_until(
            child, lambda: committed_until(inputs, manifest) >= KILL_AFTER_ROWS, tree
        )
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    finally:
        child.kill()
        child.communicate()
        processes.end(tree)
    manifest = json.loads(inputs.get("crash/results/_manifest.json"))
    assert not manifest["finished"] and manifest["committed_until"] < TOTAL
    at_kill = etags(inputs, "crash/results/")
    listed = {p["file"] for p in manifest["parts"]}
    assert "_lock" in at_kill  # the killed run's lock: its process is gone, so it is taken

    summary = run(RunConfig.load(config))  # the same job file, on this machine

    assert (summary.resumed_from, summary.processed) == (
        manifest["committed_until"],
        TOTAL - manifest["committed_until"],
    )
    rows = read_results(inputs.location(f"{root}/crash/results")).to_pylist()
    assert [r["index"] for r in rows] == list(range(TOTAL))
    assert labels_of(rows) == [colour_of(int(Path(r["source"]).stem[3:])) for r in rows]
    after = etags(inputs, "crash/results/")
    assert all(after[name] == at_kill[name] for name in listed)  # committed parts untouched
    finished = json.loads(inputs.get("crash/results/_manifest.json"))
    assert set(after) == {p["file"] for p in finished["parts"]} | {"_manifest.json"}


def test_a_second_run_into_an_output_in_use_exits_2_naming_the_first(
    inputs: Inputs, tmp_path: Path
) -> None:
    root = inputs.root("s3")
    config = write_config(tmp_path, inputs.job("s3", f"{root}/held"))
    results = inputs.location(f"{root}/held/results")
    with output_lock(results, holder_info="the other run"):
        refused = CliRunner().invoke(main, ["run", str(config)])
    assert refused.exit_code == 2, refused.output
    holder = f"pid {os.getpid()} on {socket.gethostname()}, the other run"
    assert f"{results.uri} is being written by another distinfer run ({holder}; " in refused.output
    assert "Traceback" not in refused.output
    assert inputs.keys("held/") == []  # refused before anything was written


def test_a_lock_nobody_renews_is_taken_over(
    inputs: Inputs, ray_session: Any, caplog: pytest.LogCaptureFixture
) -> None:
    root = inputs.root("s3")
    record = {"format": "distinfer-lock", "host": "elsewhere", "pid": 4242, "token": "theirs"}
    inputs.bucket.put("stale/results/_lock", json.dumps(record).encode())
    job = inputs.job(
        "s3",
        f"{root}/stale",
        input={"images": [f"{root}/in/set.tar"], "videos": []},
        storage={"lock_expiry_s": 1},
    )
    time.sleep(1.2)  # its run died without a word: not renewed for its expiry
    with caplog.at_level(logging.WARNING, logger="distinfer"):
        summary = run(RunConfig.parse(job))
    assert summary.total == 4 and summary.errors == 0
    assert any("took the output lock over" in r.message for r in caplog.records)
    assert "stale/results/_lock" not in inputs.keys("stale/")  # released at the end


def test_a_run_whose_lock_was_taken_over_stops_before_writing_again(
    inputs: Inputs, many: str, ray_session: Any
) -> None:
    root = inputs.root("s3")
    job = inputs.job(
        "s3",
        f"{root}/taken",
        input={"images": [many], "videos": []},
        output={"rows_per_part": 8},
        cluster={"items_per_unit": 2, "units_in_flight_per_actor": 1},
    )
    taken: list[int] = []

    def take_the_lock(summary: Any, total: int | None) -> None:
        if not taken and committed_until(inputs, "taken/results/_manifest.json") >= 8:
            record = {"format": "distinfer-lock", "host": "elsewhere", "pid": 7, "token": "x"}
            inputs.bucket.put("taken/results/_lock", json.dumps(record).encode())
            taken.append(committed_until(inputs, "taken/results/_manifest.json"))

    with pytest.raises(OutputError, match=r"no longer holds its output lock \(pid 7 on elsewhere"):
        run(RunConfig.parse(job), progress=take_the_lock)
    manifest = json.loads(inputs.get("taken/results/_manifest.json"))
    assert not manifest["finished"] and manifest["committed_until"] == taken[0]  # not one more
    assert json.loads(inputs.get("taken/results/_lock"))["token"] == "x"  # theirs, untouched
