"""The progress of ``distinfer run``: counts, then done/total and an ETA once the total
is known, as a bar on a terminal and as lines elsewhere."""

from __future__ import annotations

import io

from distinfer.distributed._progress import Progress
from distinfer.distributed._summary import RunSummary


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
