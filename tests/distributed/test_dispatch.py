"""The dispatcher against a fake Ray on simulated time (``_fake_ray``): credits, the
reorder window, redelivery after actor deaths, splitting failing units, exactly-once
output through collector restarts, the error budget. The collector is the real one,
writing real Parquet, read back at the end of each run."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from _fake_ray import FakeActor, FakeCollector, FakeRay, actors, image_unit

from distinfer import ActorDiedError, read_results
from distinfer.distributed import _dispatch
from distinfer.distributed._dispatch import MAX_ATTEMPTS, Abort, Dispatcher, DispatchOptions
from distinfer.distributed._summary import RunSummary
from distinfer.distributed._work import ErrorItem, UnitSize, WorkItem

UNIT = 4


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeRay:
    fake = FakeRay()
    monkeypatch.setattr(_dispatch, "time", fake.clock)  # probes and timeouts on simulated time
    return fake


@pytest.fixture
def collector(fake: FakeRay, tmp_path: Path) -> FakeCollector:
    return FakeCollector(fake, tmp_path / "results", rows_per_part=10)


def work(total: int, errors: Mapping[int, str] | None = None) -> Iterator[WorkItem]:
    """Units of ``UNIT`` images over indices ``0 .. total - 1``, as enumeration yields
    them; an ``ErrorItem`` at each index of ``errors`` (units are cut around it)."""
    errors = errors or {}
    ids = itertools.count()
    index = 0
    while index < total:
        if index in errors:
            yield ErrorItem(index, f"video{index}.mp4", errors[index])
            index += 1
            continue
        end = min([index + UNIT, total, *(e for e in errors if e > index)])
        yield image_unit(next(ids), index, end - index)
        index = end


def dispatcher(
    fake: FakeRay,
    collector: FakeCollector,
    workers: list[FakeActor],
    items: Iterator[WorkItem],
    *,
    in_flight: int = 2,
    window: int = 1000,
    max_error_fraction: float = 1.0,
) -> Dispatcher:
    size = UnitSize(UNIT, actors=len(workers), units_in_flight=in_flight, window_items=window)
    options = DispatchOptions(
        units_in_flight_per_actor=in_flight,
        reorder_buffer_items=window,
        unit_size=size,
        max_error_fraction=max_error_fraction,
    )
    return Dispatcher(fake, collector, actors(*workers), items, options)


def dispatch(
    fake: FakeRay,
    collector: FakeCollector,
    workers: list[FakeActor],
    items: Iterator[WorkItem],
    **options: Any,
) -> RunSummary:
    return dispatcher(fake, collector, workers, items, **options).run()


def written(collector: FakeCollector, total: int) -> list[dict[str, Any]]:
    """Every row of the run as read back from Parquet (``finish`` checks all are committed)."""
    collector.instance.finish(total, {})
    return read_results(collector.folder).to_pylist()  # type: ignore[no-any-return]


def assert_each_index_once_in_order(rows: list[dict[str, Any]], total: int) -> None:
    assert [r["index"] for r in rows] == list(range(total))
    assert [r["source"] for r in rows if r["node"] != "driver"] == [
        f"img{r['index']}.png" for r in rows if r["node"] != "driver"
    ]


def units_holding(actor: FakeActor, index: int) -> int:
    return sum(u.first_index <= index < u.first_index + len(u) for u in actor.units)


# -- credits -------------------------------------------------------------------------------


def test_no_actor_ever_holds_more_units_than_its_credits(
    fake: FakeRay, collector: FakeCollector
) -> None:
    fast = FakeActor(fake, "fast", seconds_per_item=1.0)
    slow = FakeActor(fake, "slow", seconds_per_item=4.0)
    summary = dispatch(fake, collector, [fast, slow], work(240), in_flight=3)

    assert (fast.max_held, slow.max_held) == (3, 3)  # every credit used, none more
    assert summary.processed == 240 and summary.errors == 0
    assert_each_index_once_in_order(written(collector, 240), 240)


def test_a_faster_actor_gets_more_units(fake: FakeRay, collector: FakeCollector) -> None:
    fast = FakeActor(fake, "fast", seconds_per_item=1.0)
    slow = FakeActor(fake, "slow", seconds_per_item=4.0)
    summary = dispatch(fake, collector, [fast, slow], work(240), in_flight=3)

    # four times the speed, about four times the units: credits come back sooner
    assert len(fast.units) + len(slow.units) == 60
    assert len(fast.units) >= 3 * len(slow.units)
    assert summary.nodes["fast"]["items"] == 4 * len(fast.units)
    assert summary.nodes["slow"]["items"] == 4 * len(slow.units)


# -- the reorder window --------------------------------------------------------------------


def test_no_unit_is_sent_a_window_or_more_past_the_lowest_unfinished_one(
    fake: FakeRay, collector: FakeCollector
) -> None:
    window = 16
    # unit 8..11 takes 60 s where the others take 1 s: the window holds everything back
    a = FakeActor(fake, "a", delay_s=lambda unit: 60.0 if unit.first_index == 8 else 1.0)
    b = FakeActor(fake, "b", seconds_per_item=0.25)
    dispatch(fake, collector, [a, b], work(120), in_flight=8, window=window)

    sent = fake.dispatches
    assert all(d.lowest_open is None or d.first < d.lowest_open + window for d in sent)
    # ... and the window was reached: units went out up to its very edge while 8 was open
    assert any(d.lowest_open == 8 and d.first == 8 + window - UNIT for d in sent)
    status = collector.instance.status()
    assert window - UNIT <= status.max_buffered <= window + UNIT
    assert_each_index_once_in_order(written(collector, 120), 120)


def test_units_completing_out_of_order_are_written_once_each_in_index_order(
    fake: FakeRay, collector: FakeCollector
) -> None:
    rng = random.Random(7)
    delays: dict[int, float] = {}

    def delay(unit: Any) -> float:
        return delays.setdefault(unit.first_index, rng.uniform(0.5, 10.0))

    workers = [FakeActor(fake, name, delay_s=delay) for name in "abc"]
    summary = dispatch(fake, collector, workers, work(200), in_flight=3, window=64)

    done = [u.first_index for w in workers for u in w.done]
    assert sorted(done) == list(range(0, 200, UNIT))  # each unit delivered once
    assert collector.instance.status().max_buffered > 0  # rows did arrive out of order
    rows = written(collector, 200)
    assert_each_index_once_in_order(rows, 200)
    assert summary.processed == 200 and all(r["error"] is None for r in rows)


# -- inference actors that die ---------------------------------------------------------------


def test_the_units_of_an_actor_that_dies_mid_unit_go_to_another(
    fake: FakeRay, collector: FakeCollector
) -> None:
    a = FakeActor(fake, "a", seconds_per_item=1.0)
    b = FakeActor(fake, "b", seconds_per_item=1.0)
    a.die_at(6.0, restart_after_s=30.0)  # holding two units, half done
    summary = dispatch(fake, collector, [a, b], work(80))

    assert [u.first_index for u in a.lost] == [16, 24]
    for unit in a.lost:  # done again by b, while a was away
        assert units_holding(b, unit.first_index) == 1
    rows = written(collector, 80)
    assert_each_index_once_in_order(rows, 80)
    assert all(r["error"] is None for r in rows)
    assert summary.processed == 80 and fake.killed == []


def test_an_actor_back_from_a_restart_takes_its_units_again(
    fake: FakeRay, collector: FakeCollector
) -> None:
    a = FakeActor(fake, "a", seconds_per_item=1.0)
    a.die_at(6.0, restart_after_s=5.0)
    dispatch(fake, collector, [a], work(40))

    assert [u.first_index for u in a.lost] == [8, 12]
    assert units_holding(a, 8) == units_holding(a, 12) == 2  # lost, then done after the restart
    assert a.probes >= 2  # asked while restarting, and once back
    rows = written(collector, 40)
    assert_each_index_once_in_order(rows, 40)
    assert all(r["error"] is None for r in rows) and fake.killed == []


def test_an_actor_gone_for_good_is_dropped_and_the_rest_finish_the_run(
    fake: FakeRay, collector: FakeCollector
) -> None:
    a = FakeActor(fake, "a", seconds_per_item=1.0)
    b = FakeActor(fake, "b", seconds_per_item=1.0)
    b.die_at(6.0, restart_after_s=None)
    summary = dispatch(fake, collector, [a, b], work(80))

    assert fake.killed == [("b", 6.0)]  # given up at once (and what Ray held freed)
    assert [u.first_index for u in b.lost] == [20, 28]
    assert all(d.actor == "a" for d in fake.dispatches if d.time >= 6.0)
    rows = written(collector, 80)
    assert_each_index_once_in_order(rows, 80)
    assert all(r["error"] is None for r in rows) and summary.processed == 80


def test_an_actor_not_back_within_the_restart_timeout_is_given_up(
    fake: FakeRay, collector: FakeCollector
) -> None:
    a = FakeActor(fake, "a", seconds_per_item=1.0)
    b = FakeActor(fake, "b", seconds_per_item=1.0)
    b.die_at(6.0, restart_after_s=10 * _dispatch.ACTOR_RESTART_TIMEOUT_S)
    dispatch(fake, collector, [a, b], work(200))  # a alone needs 100 s after that

    ((name, when),) = fake.killed
    timeout_s = _dispatch.ACTOR_RESTART_TIMEOUT_S
    assert name == "b" and 6.0 + timeout_s <= when < 6.0 + timeout_s + 1.0
    assert not any(d.actor == "b" for d in fake.dispatches if d.time >= 6.0)
    assert_each_index_once_in_order(written(collector, 200), 200)


def test_with_every_actor_gone_the_run_fails_with_actor_died_error(
    fake: FakeRay, collector: FakeCollector
) -> None:
    a = FakeActor(fake, "a", seconds_per_item=1.0)
    b = FakeActor(fake, "b", seconds_per_item=1.0)
    a.die_at(6.0, restart_after_s=None)
    b.die_at(9.0, restart_after_s=None)
    with pytest.raises(ActorDiedError, match="every inference actor died"):
        dispatch(fake, collector, [a, b], work(80))
    assert fake.killed == [("a", 6.0), ("b", 9.0)]


# -- units that fail -------------------------------------------------------------------------


def test_a_unit_that_fails_twice_is_split_and_only_the_failing_item_becomes_an_error_row(
    fake: FakeRay, collector: FakeCollector
) -> None:
    a = FakeActor(fake, "a", poison={13})
    b = FakeActor(fake, "b", poison={13})
    summary = dispatch(fake, collector, [a, b], work(40))

    near = [(d.first, d.end) for d in fake.dispatches if d.first < 16 and d.end > 12]
    assert near == [(12, 16), (12, 16), (12, 13), (13, 14), (14, 15), (15, 16)]
    rows = written(collector, 40)
    assert_each_index_once_in_order(rows, 40)
    failed = {r["index"]: (r["error"], r["node"]) for r in rows if r["error"] is not None}
    message = f"failed {MAX_ATTEMPTS} times; last: ValueError: poison item 13"
    assert failed == {13: (message, "driver")}
    assert (summary.processed, summary.errors) == (40, 1)


def test_an_item_that_kills_its_actor_each_time_becomes_one_error_row(
    fake: FakeRay, collector: FakeCollector
) -> None:
    a = FakeActor(fake, "a", killer={13}, restart_after_s=2.0)
    b = FakeActor(fake, "b", killer={13}, restart_after_s=2.0)
    summary = dispatch(fake, collector, [a, b], work(40))

    rows = written(collector, 40)
    assert_each_index_once_in_order(rows, 40)
    failed = {r["index"]: r["error"] for r in rows if r["error"] is not None}
    assert failed == {13: f"failed {MAX_ATTEMPTS} times; last: worker died (ActorDiedError)"}
    assert summary.errors == 1 and fake.killed == []  # both came back each time


# -- collector restarts ----------------------------------------------------------------------

#: Items known bad at enumeration in ``run_through_a_collector_restart``.
ERRORS = {9: "unreadable", 30: "unreadable"}
#: Batches its collector takes when nothing fails: one per unit, one per error row.
BATCHES = len(list(work(72, ERRORS)))


def run_through_a_collector_restart(
    fake: FakeRay, collector: FakeCollector, after_batch: int
) -> list[dict[str, Any]]:
    # b answers late: its answers can carry the epoch of an instance that died since
    a = FakeActor(fake, "a", seconds_per_item=1.0)
    b = FakeActor(fake, "b", seconds_per_item=1.5, answer_s=7.0)
    collector.restart_after(after_batch)
    summary = dispatch(fake, collector, [a, b], work(72, ERRORS))
    assert len(collector.lost) == 1 and len(collector.taken[0]) == after_batch
    assert (summary.processed, summary.errors) == (72, 2)
    return written(collector, 72)


@pytest.mark.parametrize("after_batch", range(1, BATCHES + 1))
def test_a_collector_restart_after_any_batch_loses_no_row_and_writes_none_twice(
    fake: FakeRay, collector: FakeCollector, after_batch: int
) -> None:
    rows = run_through_a_collector_restart(fake, collector, after_batch)

    assert_each_index_once_in_order(rows, 72)
    failed = {r["index"]: (r["error"], r["node"]) for r in rows if r["error"] is not None}
    assert failed == {9: ("unreadable", "driver"), 30: ("unreadable", "driver")}


def test_rows_lost_with_the_collector_are_delivered_again_and_duplicates_dropped(
    fake: FakeRay, collector: FakeCollector
) -> None:
    rows = run_through_a_collector_restart(fake, collector, after_batch=9)

    (lost,) = collector.lost
    before, after = collector.taken
    uncommitted = [(first, end) for first, end, _ in before if end > lost.committed_until]
    assert (30, 31, "driver") in before and lost.committed_until <= 30  # the driver's own row
    assert len(uncommitted) >= 3
    assert set(uncommitted) <= {(first, end) for first, end, _ in after}  # all delivered again
    assert collector.instance.status().duplicates > 0  # some twice; written once
    assert_each_index_once_in_order(rows, 72)
    assert rows[30]["error"] == "unreadable"


# -- errors ------------------------------------------------------------------------------------


def test_more_errors_than_max_error_fraction_abort_the_run_naming_the_fraction(
    fake: FakeRay, collector: FakeCollector
) -> None:
    bad = set(range(0, 400, 3))
    workers = [FakeActor(fake, name, bad=bad) for name in "ab"]
    run = dispatcher(fake, collector, workers, work(400), max_error_fraction=0.1)
    with pytest.raises(Abort, match=r"failed, more than cluster.max_error_fraction=0.1") as info:
        run.run()
    message = "7 of 20 items failed, more than cluster.max_error_fraction=0.1"
    assert str(info.value) == run.summary.aborted == message
    assert len(fake.dispatches) < 100 // 4  # stopped as soon as 20 items could tell


def test_errors_within_max_error_fraction_do_not_abort(
    fake: FakeRay, collector: FakeCollector
) -> None:
    bad = set(range(0, 400, 20))
    workers = [FakeActor(fake, name, bad=bad) for name in "ab"]
    summary = dispatch(fake, collector, workers, work(400), max_error_fraction=0.1)

    assert (summary.processed, summary.errors, summary.aborted) == (400, 20, None)
    rows = written(collector, 400)
    assert [r["index"] for r in rows if r["error"]] == sorted(bad)


def test_items_known_bad_at_enumeration_become_error_rows_in_place(
    fake: FakeRay, collector: FakeCollector
) -> None:
    errors = {0: "cannot open", 9: "no stream", 10: "no stream", 39: "cannot open"}
    workers = [FakeActor(fake, name) for name in "ab"]
    summary = dispatch(fake, collector, workers, work(40, errors))

    rows = written(collector, 40)
    assert_each_index_once_in_order(rows, 40)
    failed = {r["index"]: (r["source"], r["error"], r["node"]) for r in rows if r["error"]}
    assert failed == {i: (f"video{i}.mp4", e, "driver") for i, e in errors.items()}
    assert (summary.processed, summary.errors) == (40, 4)
