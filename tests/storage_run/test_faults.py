"""Storage faults during a whole run, through a proxy in front of the S3 server: throttling
and dropped answers cost nothing; a store gone past the retry budget stops the run
resumably (exit 1), and the same command then finishes it exactly once."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from _faults import FaultProxy
from _jobs import write_images
from _s3_jobs import Inputs, comparable, write_config
from click.testing import CliRunner

from distinfer import RunConfig, read_results, run
from distinfer._main import main


def test_throttling_and_dropped_answers_lose_and_double_nothing(
    inputs: Inputs, local_rows: list[dict[str, Any]]
) -> None:
    root = inputs.root("s3")
    with FaultProxy(inputs.bucket.endpoint, slow_down_every=7, drop_every=11) as proxy:
        job = inputs.job(
            "s3",
            f"{root}/faulty",
            output={"overlays": f"{root}/faulty/overlays/"},
            storage={"endpoint": proxy.endpoint, "retry_timeout_s": 60},
        )
        summary = run(RunConfig.parse(job))
    assert proxy.stats.slowed_down >= 20 and proxy.stats.dropped >= 10, proxy.stats
    rows = read_results(inputs.location(f"{root}/faulty/results")).to_pylist()
    assert comparable(rows, root) == local_rows  # every row once, as on a local disk
    assert summary.total == summary.processed == len(local_rows)
    manifest = json.loads(inputs.get("faulty/results/_manifest.json"))
    assert manifest["rows"] == len(local_rows) and manifest["stats"]["collector"]["duplicates"] == 0
    assert len(inputs.keys("faulty/overlays/")) == 28


def test_a_store_gone_past_its_retries_stops_the_run_then_a_rerun_finishes_it_once(
    inputs: Inputs, ray_session: Any, tmp_path: Path
) -> None:
    total = 160
    for path in write_images(tmp_path / "slow", total):
        inputs.bucket.put(f"slow/{path.relative_to(tmp_path / 'slow')}", path.read_bytes())
    root = inputs.root("s3")
    proxy = FaultProxy(inputs.bucket.endpoint).start()
    job = inputs.job(
        "s3",
        f"{root}/outage",
        input={"images": [f"{root}/slow/"], "videos": []},
        output={"rows_per_part": 4},
        cluster={"items_per_unit": 1, "units_in_flight_per_actor": 1},
        storage={
            "endpoint": proxy.endpoint,
            "retry_timeout_s": 1,
            "max_retries": 3,
            "lock_expiry_s": 2,
        },
    )
    config = write_config(tmp_path / "job", job)

    def cut_when_committed() -> None:  # the store goes away mid-run, for good
        while not _committed(inputs, "outage/results/_manifest.json"):
            time.sleep(0.02)
        proxy.stop()

    cutter = threading.Thread(target=cut_when_committed, daemon=True)
    cutter.start()
    stopped = CliRunner().invoke(main, ["run", str(config)])
    cutter.join(timeout=5)
    assert stopped.exit_code == 1, stopped.output
    assert "the store did not answer" in stopped.output
    assert "rerun the same command to finish it exactly once" in stopped.output
    assert "Traceback" not in stopped.output
    manifest = json.loads(inputs.get("outage/results/_manifest.json"))
    committed = manifest["committed_until"]
    assert not manifest["finished"] and 0 < committed < total

    job["storage"] = {**job["storage"], "endpoint": inputs.bucket.endpoint}  # back again
    write_config(tmp_path / "job", job)
    time.sleep(2.5)  # the stopped run could not delete its lock: it expires
    again = CliRunner().invoke(main, ["run", str(config)])
    assert again.exit_code == 0, again.output
    assert f"done: {total} items ({total - committed} this run, {committed} resumed)" in (
        again.output
    )
    rows = read_results(inputs.location(f"{root}/outage/results")).to_pylist()
    assert [r["index"] for r in rows] == list(range(total))  # exactly once
    assert all(r["error"] is None for r in rows)


def _committed(inputs: Inputs, key: str) -> bool:
    try:
        return int(json.loads(inputs.get(key))["committed_until"]) >= 8
    except Exception:  # noqa: BLE001 - not written yet
        return False
