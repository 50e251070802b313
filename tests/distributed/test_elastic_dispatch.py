"""The dispatcher with a real ``Placement`` on a fake Ray on simulated time (``_fake_ray``
plus ``ray.nodes()``): a node that joins gets work only once its actor has compiled; a
node that leaves hands its units back; with every actor gone, one still starting is
waited for. The output is read back: every index once, in order."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from _fake_ray import FakeActor, FakeCollector, FakeRay, FakeRef, image_unit

from distinfer import read_results
from distinfer.distributed import _dispatch
from distinfer.distributed._dispatch import Dispatcher, DispatchOptions
from distinfer.distributed._placement import Placement
from distinfer.distributed._summary import RunSummary
from distinfer.distributed._work import UnitSize, WorkItem

UNIT = 4
POLL_S = 2.0


class CompilingActor(FakeActor):
    """An actor on a node that joined: its ``info()`` answers once its model has
    compiled, ``compile_s`` after it was started, as a real actor's first call waits
    for its constructor."""

    def __init__(self, ray: FakeRay, name: str, compile_s: float, **kwargs: Any) -> None:
        super().__init__(ray, name, **kwargs)
        self.started_at = ray.now
        self.ready_at = ray.now + compile_s

    def _info(self) -> FakeRef:
        ref = FakeRef(f"{self.name}.info")
        self.ray.at(self.ready_at, lambda: ref.resolve({"node": self.name}))
        return ref


class Cluster:
    """``ray.nodes()`` for the fake Ray, and the actors each node got."""

    def __init__(self, fake: FakeRay, compile_s: float = 5.0) -> None:
        self.fake = fake
        self.compile_s = compile_s
        self.alive: dict[str, bool] = {}
        self.actors: dict[str, FakeActor] = {}
        fake.nodes = self.nodes  # type: ignore[attr-defined]

    def nodes(self) -> list[dict[str, Any]]:
        return [
            {"NodeID": node, "Alive": alive, "Resources": {"CPU": 2.0}}
            for node, alive in self.alive.items()
        ]

    def add(self, node: str, at_s: float = 0.0) -> None:
        self.fake.at(at_s, lambda: self.alive.__setitem__(node, True))

    def remove(self, node: str, at_s: float) -> None:
        def remove() -> None:
            self.alive[node] = False
            self.actors[node].die(restart_after_s=None)

        self.fake.at(at_s, remove)

    def spawn(self, node: Mapping[str, Any]) -> dict[str, Any]:
        name = node["NodeID"]
        if self.fake.now == 0.0:  # the nodes there at the start: compiling, as any actor
            actor: FakeActor = FakeActor(self.fake, name)
        else:
            actor = CompilingActor(self.fake, name, self.compile_s)
        self.actors[name] = actor
        return {name: actor}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeRay:
    fake = FakeRay()
    monkeypatch.setattr(_dispatch, "time", fake.clock)
    return fake


@pytest.fixture
def collector(fake: FakeRay, tmp_path: Path) -> FakeCollector:
    return FakeCollector(fake, tmp_path / "results", rows_per_part=10)


def work(total: int) -> Iterator[WorkItem]:
    ids = itertools.count()
    for first in range(0, total, UNIT):
        yield image_unit(next(ids), first, min(UNIT, total - first))


def run(fake: FakeRay, collector: FakeCollector, cluster: Cluster, total: int) -> RunSummary:
    fake.run_until(0.0)  # the nodes there at the start
    placement = Placement(
        fake, cluster.spawn, max_nodes=None, poll_interval_s=POLL_S, clock=fake.clock.monotonic
    )
    actors = placement.start()
    options = DispatchOptions(
        units_in_flight_per_actor=2,
        reorder_buffer_items=1000,
        unit_size=UnitSize(UNIT, actors=len(actors), units_in_flight=2, window_items=1000),
        placement=placement,
    )
    summary = Dispatcher(fake, collector, actors, work(total), options).run()
    collector.instance.finish(total, {})
    rows = read_results(collector.folder).to_pylist()
    assert [r["index"] for r in rows] == list(range(total))
    return summary


def sent_to(fake: FakeRay, actor: str) -> list[float]:
    return [d.time for d in fake.dispatches if d.actor == actor]


def test_a_node_that_joins_gets_work_only_once_its_actor_has_compiled(
    fake: FakeRay, collector: FakeCollector
) -> None:
    cluster = Cluster(fake, compile_s=5.0)
    cluster.add("first")
    cluster.add("second", at_s=10.0)
    summary = run(fake, collector, cluster, 200)

    joined = cluster.actors["second"]
    assert 10.0 <= joined.started_at <= 10.0 + POLL_S  # at the next poll of the nodes
    assert min(sent_to(fake, "second")) >= joined.ready_at  # nothing waits behind a compile
    assert len(sent_to(fake, "second")) > 10 and len(joined.done) > 10
    assert [(e.node, e.event) for e in summary.node_events] == [
        ("first", "started"),
        ("second", "joined"),
    ]
    assert summary.processed == 200 and summary.errors == 0


def test_a_node_that_leaves_hands_its_units_back_and_costs_no_row(
    fake: FakeRay, collector: FakeCollector
) -> None:
    cluster = Cluster(fake)
    cluster.add("first")
    cluster.add("second")
    cluster.remove("second", at_s=20.5)
    summary = run(fake, collector, cluster, 120)

    assert cluster.actors["second"].lost  # it held units when it went
    assert max(sent_to(fake, "second")) < 20.5
    assert summary.processed == 120 and summary.errors == 0
    assert [(e.node, e.event) for e in summary.node_events][-1] == ("second", "left")


def test_with_every_actor_gone_one_still_starting_is_waited_for(
    fake: FakeRay, collector: FakeCollector
) -> None:
    cluster = Cluster(fake, compile_s=30.0)
    cluster.add("first")
    cluster.add("second", at_s=3.0)
    fake.at(5.0, lambda: cluster.actors["first"].die(restart_after_s=None))  # node stays
    summary = run(fake, collector, cluster, 80)

    assert cluster.actors["first"].lost
    assert min(sent_to(fake, "second")) >= cluster.actors["second"].ready_at
    assert summary.processed == 80 and summary.errors == 0
