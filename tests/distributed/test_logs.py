"""Worker logs: kept in the worker at the run's level, shown on the driver once each."""

from __future__ import annotations

import logging

import pytest

from distinfer.distributed._logs import MAX_FORWARDED, LogForwarder, WorkerLogs


@pytest.fixture
def forwarder() -> LogForwarder:
    forwarder = LogForwarder.install(logging.WARNING)
    yield forwarder
    logging.getLogger("distinfer").removeHandler(forwarder)
    logging.getLogger("distinfer").setLevel(logging.NOTSET)


def test_records_at_the_level_are_kept_until_drained(forwarder: LogForwarder) -> None:
    log = logging.getLogger("distinfer.sources")
    log.info("not forwarded at WARNING")
    log.warning("seek failed in %s", "a.mp4")
    assert forwarder.drain() == ((logging.WARNING, "distinfer.sources: seek failed in a.mp4"),)
    assert forwarder.drain() == ()


def test_a_flood_is_cut_and_counted(forwarder: LogForwarder) -> None:
    log = logging.getLogger("distinfer.engine")
    for i in range(MAX_FORWARDED + 7):
        log.warning("w%d", i)
    drained = forwarder.drain()
    assert len(drained) == MAX_FORWARDED + 1
    assert drained[-1][1] == "7 more log records not forwarded"


def test_the_driver_shows_each_record_once_per_node(caplog: pytest.LogCaptureFixture) -> None:
    logs = WorkerLogs()
    record = (logging.WARNING, "distinfer.sources: seek failed")
    with caplog.at_level(logging.WARNING, logger="distinfer.worker"):
        logs.show("node-a", [record, record])
        logs.show("node-a", [record])
        logs.show("node-b", [record])
    assert caplog.messages == [
        "[node-a] distinfer.sources: seek failed",
        "[node-b] distinfer.sources: seek failed",
    ]
    assert logs.repeats == 2
