"""The collector killed mid-job: Ray restarts it at the last committed part, the driver
sees the new epoch and resends what was delivered but not committed."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from _jobs import job_config

from distinfer import RunConfig, RunSummary, run

COLLECTOR = "ray::OrderedCollector"


def committed_until(results: Path) -> int:
    try:
        return int(json.loads((results / "_manifest.json").read_text())["committed_until"])
    except (OSError, ValueError):
        return 0


@pytest.mark.parametrize("moment", ["mid-job", "after-the-last-unit"])
def test_a_killed_collector_resumes_and_nothing_is_lost_or_duplicated(
    moment: str,
    ray_session: Any,
    images: Path,
    clean_rows: list[dict[str, Any]],
    read_rows: Any,
    processes: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    results = tmp_path / "results"
    before = processes.titled(os.getpid(), COLLECTOR)  # collectors of earlier runs
    killed: list[int] = []

    def kill_the_collector(summary: RunSummary, total: int | None) -> None:
        if killed:
            return
        committed = committed_until(results)
        if moment == "mid-job":
            # parts committed, and delivered rows not yet committed to lose
            due = committed >= 32 and summary.processed - committed >= 8
        else:  # every unit delivered; the final commit not yet made
            due = summary.processed == 160 and committed < 160
        collectors = processes.titled(os.getpid(), COLLECTOR) - before
        if due and collectors:
            killed.extend(collectors)
            processes.end(collectors)

    config = RunConfig.parse(
        job_config(
            tmp_path,
            input={"images": str(images)},
            output={"rows_per_part": 24, "flush_interval_s": 600},
            cluster={"actors_per_node": 2},
        )
    )
    with caplog.at_level(logging.WARNING, logger="distinfer"):
        summary = run(config, progress=kill_the_collector)

    assert killed, "the collector was not killed"
    assert any("collector restarted" in r.message for r in caplog.records)
    assert [r["index"] for r in read_rows(results)] == list(range(160))
    assert read_rows(results) == clean_rows
    assert summary.total == 160 and summary.processed == 160 and summary.errors == 0
    manifest = summary.manifest
    assert manifest["finished"] and manifest["rows"] == 160
