"""The progress of ``distinfer run``: counts, then done/total and an ETA once the total
is known, as a bar on a terminal and as lines elsewhere."""

from __future__ import annotations

import io

from distinfer.distributed._progress import Progress
from distinfer.distributed._summary import NodeEvent, RunSummary


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_lines_show_counts_then_the_total_and_an_eta_once_known() -> None:
    out = io.StringIO()
    progress = Progress(out)
    progress.last = -1e9  # as if the previous line was long ago
    progress(RunSummary(processed=10), None)
    progress.last = -1e9
    progress(RunSummary(processed=20, errors=1), 100)
    first, second = out.getvalue().splitlines()
    assert first.startswith("10 items") and "ETA" not in first
    assert "20/100" in second and "ETA" in second and "1 errors" in second


def test_a_resumed_run_counts_what_is_left_and_the_bar_ends_its_line() -> None:
    out = Terminal()
    progress = Progress(out)
    assert progress.mode == "bar"
    progress(RunSummary(processed=25, resumed_from=50, finished=True), 100)
    assert "25/50" in out.getvalue() and out.getvalue().startswith("\r")
    assert out.getvalue().endswith("\n")


def test_off_writes_nothing() -> None:
    out = io.StringIO()
    Progress(out, mode="off")(RunSummary(processed=5, finished=True), 5)
    assert out.getvalue() == ""


def test_nodes_joining_and_leaving_get_a_line_each_and_the_count_shows() -> None:
    out = io.StringIO()
    progress = Progress(out, mode="lines")
    summary = RunSummary(processed=10, node_events=[NodeEvent("a" * 12, "started", 0.0, 1)])
    progress(summary, None)
    summary.node_events.append(NodeEvent("b" * 12, "joined", 8.5, 2))
    progress(summary, None)
    summary.node_events.append(NodeEvent("a" * 12, "left", 20.0, 1))
    progress(summary, None)
    lines = out.getvalue().splitlines()
    assert "started" not in out.getvalue() and "nodes" not in lines[0]
    assert lines[1] == "node bbbbbbbbbbbb joined: 2 actor(s)" and lines[2].endswith("2 nodes")
    assert lines[3] == "node aaaaaaaaaaaa left: 1 actor(s)" and lines[4].endswith("1 nodes")
    assert summary.describe_nodes() == "2 (1 joined, 1 left)"


def test_the_metrics_endpoints_are_shown_once() -> None:
    out = io.StringIO()
    progress = Progress(out, mode="lines")
    summary = RunSummary(metrics_endpoints=["http://127.0.0.1:9464/metrics"])
    progress(summary, None)
    progress(summary, None)
    assert out.getvalue().count("metrics: http://127.0.0.1:9464/metrics") == 1
