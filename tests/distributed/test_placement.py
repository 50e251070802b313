"""Placement: actors on the nodes there at the start, on nodes that join (handed out only
once they answer and the node sees the run's local paths), nodes that leave reported;
``actors_per_node: auto`` as documented.

Ray is replaced by a small fake: ``ray.nodes()`` is a list the test edits, and each
actor's ``info()`` answers when the test says so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from distinfer import ConfigError, RunConfig
from distinfer.distributed._placement import (
    ACTOR_START_TIMEOUT_S,
    NODE_POLL_INTERVAL_S,
    Placement,
    actors_for,
)

DOCS = Path(__file__).parents[2] / "docs" / "cluster.md"


class RayError(Exception):
    pass


class Ref:
    def __init__(self) -> None:
        self.answer: Any = None  # None: not yet; an exception: raised by get
        self.answered = False


class Method:
    def __init__(self) -> None:
        self.refs: list[Ref] = []

    def remote(self) -> Ref:
        self.refs.append(Ref())
        return self.refs[-1]


class Actor:
    def __init__(self, name: str) -> None:
        self.name = name
        self.info = Method()
        self.killed = False

    def starts(self, error: Exception | None = None) -> None:
        """Its ``info()`` answers: started, or failed with ``error``."""
        for ref in self.info.refs:
            ref.answered, ref.answer = True, error or {"node": self.name}


class FakeRay:
    class exceptions:  # as ``ray.exceptions``
        RayError = RayError

    def __init__(self) -> None:
        self.node_list: list[dict[str, Any]] = []
        self.reads = 0

    def add_node(self, node_id: str, cpus: float) -> None:
        self.node_list.append({"NodeID": node_id, "Alive": True, "Resources": {"CPU": cpus}})

    def remove_node(self, node_id: str) -> None:
        for node in self.node_list:
            if node["NodeID"] == node_id:
                node["Alive"] = False

    def nodes(self) -> list[dict[str, Any]]:
        self.reads += 1
        return [dict(n) for n in self.node_list]

    def wait(self, refs: list[Ref], *, num_returns: int, timeout: float) -> tuple[list[Ref], Any]:
        ready = [r for r in refs if r.answered]
        return ready, [r for r in refs if not r.answered]

    def get(self, ref: Ref) -> Any:
        if isinstance(ref.answer, Exception):
            raise ref.answer
        return ref.answer

    def kill(self, actor: Actor, *, no_restart: bool) -> None:
        actor.killed = True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ray() -> FakeRay:
    return FakeRay()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def spawner(setting: int | str = "auto") -> Any:
    """``spawn`` as the driver's: ``actors_per_node`` actors named after the node."""
    started: dict[str, Actor] = {}

    def spawn(node: Mapping[str, Any]) -> dict[str, Any]:
        count = actors_for(setting, node["Resources"]["CPU"])
        actors = {
            f"{node['NodeID'][:12]}-{k}": Actor(f"{node['NodeID']}-{k}") for k in range(count)
        }
        started.update(actors)
        return dict(actors)

    spawn.started = started  # type: ignore[attr-defined]
    return spawn


def placement(
    ray: FakeRay, clock: Clock, spawn: Any, max_nodes: int | None = None, check: Any = None
) -> Placement:
    return Placement(ray, spawn, max_nodes=max_nodes, check=check, clock=clock)


class Checks:
    """``check(node)``: each joining node's check, answered when the test says so."""

    def __init__(self) -> None:
        self.refs: dict[str, Ref] = {}

    def __call__(self, node: Mapping[str, Any]) -> Ref:
        self.refs[node["NodeID"][:12]] = Ref()
        return self.refs[node["NodeID"][:12]]

    def answer(self, node: str, unseen: list[tuple[str, str]]) -> None:
        self.refs[node].answered, self.refs[node].answer = True, unseen


def later(clock: Clock, seconds: float = NODE_POLL_INTERVAL_S) -> None:
    clock.now += seconds


def test_actors_start_on_each_alive_node_with_cpus_up_to_max_nodes(
    ray: FakeRay, clock: Clock
) -> None:
    ray.add_node("a" * 20, 2)
    ray.add_node("b" * 20, 0)  # the head of a cluster that keeps its CPUs to itself
    ray.add_node("c" * 20, 16)
    ray.add_node("d" * 20, 2)
    ray.remove_node("d" * 20)
    actors = placement(ray, clock, spawner()).start()
    assert sorted(actors) == ["aaaaaaaaaaaa-0", *(f"cccccccccccc-{k}" for k in range(4))]

    capped = placement(ray, clock, spawner(), max_nodes=1)
    assert sorted(capped.start()) == ["aaaaaaaaaaaa-0"]
    assert [(e.node, e.event, e.actors) for e in capped.take_events()] == [
        ("aaaaaaaaaaaa", "started", 1)
    ]


def test_a_joining_node_is_handed_out_only_once_its_actors_answer(
    ray: FakeRay, clock: Clock
) -> None:
    ray.add_node("a" * 20, 2)
    spawn = spawner(2)
    places = placement(ray, clock, spawn)
    places.start()
    places.take_events()
    ray.add_node("b" * 20, 2)

    assert places.poll().ready == {}  # not polled yet: Ray is asked every few seconds
    assert ray.reads == 1
    later(clock)
    change = places.poll()
    assert change.ready == {} and places.starting  # started there, compiling
    joining = [spawn.started[f"bbbbbbbbbbbb-{k}"] for k in range(2)]
    joining[0].starts()
    first = places.poll()
    assert list(first.ready) == ["bbbbbbbbbbbb-0"] and first.events == []
    joining[1].starts()
    second = places.poll()
    assert list(second.ready) == ["bbbbbbbbbbbb-1"] and not places.starting
    assert [(e.node, e.event, e.actors, e.at_s) for e in second.events] == [
        ("bbbbbbbbbbbb", "joined", 2, NODE_POLL_INTERVAL_S)
    ]
    assert places.node_count == 2


def test_a_node_that_leaves_is_reported_and_its_actors_given_back(
    ray: FakeRay, clock: Clock
) -> None:
    ray.add_node("a" * 20, 2)
    ray.add_node("b" * 20, 2)
    places = placement(ray, clock, spawner())
    places.start()
    ray.remove_node("b" * 20)
    later(clock)
    change = places.poll()
    assert change.gone == ["bbbbbbbbbbbb-0"]
    assert [(e.node, e.event) for e in change.events] == [
        ("aaaaaaaaaaaa", "started"),
        ("bbbbbbbbbbbb", "started"),
        ("bbbbbbbbbbbb", "left"),
    ]
    assert places.node_count == 1


def test_a_lost_actor_makes_the_nodes_checked_sooner(ray: FakeRay, clock: Clock) -> None:
    ray.add_node("a" * 20, 2)
    places = placement(ray, clock, spawner())
    places.start()
    later(clock, 0.6)
    places.poll()
    assert ray.reads == 1  # the regular poll is not due yet
    places.poll(urgent=True)
    assert ray.reads == 2


def test_nodes_left_at_the_end_are_reported_and_none_joins_then(ray: FakeRay, clock: Clock) -> None:
    ray.add_node("a" * 20, 2)
    ray.add_node("b" * 20, 2)
    places = placement(ray, clock, spawner())
    places.start()
    places.take_events()
    ray.remove_node("b" * 20)
    ray.add_node("c" * 20, 2)
    change = places.finish()
    assert [(e.node, e.event) for e in change.events] == [("bbbbbbbbbbbb", "left")]
    assert not places.starting


def test_an_actor_that_cannot_start_on_a_joining_node_is_killed_and_the_node_passed_over(
    ray: FakeRay, clock: Clock
) -> None:
    ray.add_node("a" * 20, 2)
    spawn = spawner()
    places = placement(ray, clock, spawn)
    places.start()
    ray.add_node("b" * 20, 2)
    later(clock)
    places.poll()
    broken = spawn.started["bbbbbbbbbbbb-0"]
    broken.starts(RayError("the model is not readable on this node"))
    change = places.poll()
    assert change.ready == {} and broken.killed and not places.starting
    later(clock)
    places.poll()
    assert len(spawn.started) == 2  # not tried again
    assert places.node_count == 1


def test_a_joining_node_is_handed_out_only_once_its_check_has_passed_too(
    ray: FakeRay, clock: Clock
) -> None:
    ray.add_node("a" * 20, 2)
    spawn, checks = spawner(), Checks()
    places = placement(ray, clock, spawn, check=checks)
    places.start()
    ray.add_node("b" * 20, 2)
    later(clock)
    places.poll()
    spawn.started["bbbbbbbbbbbb-0"].starts()
    assert places.poll().ready == {}  # started, but can it see the run's local paths?
    checks.answer("bbbbbbbbbbbb", [])
    assert list(places.poll().ready) == ["bbbbbbbbbbbb-0"]


def test_a_joining_node_that_cannot_see_a_local_path_is_left_alone(
    ray: FakeRay, clock: Clock
) -> None:
    ray.add_node("a" * 20, 2)
    spawn, checks = spawner(), Checks()
    places = placement(ray, clock, spawn, check=checks)
    places.start()
    places.take_events()
    ray.add_node("b" * 20, 2)
    later(clock)
    places.poll()
    spawn.started["bbbbbbbbbbbb-0"].starts()
    checks.answer("bbbbbbbbbbbb", [("input.images[0]", "/mnt/shared/pages")])
    change = places.poll()
    assert change.ready == {} and change.events == [] and not places.starting
    assert spawn.started["bbbbbbbbbbbb-0"].killed
    later(clock)
    places.poll()
    assert len(spawn.started) == 2 and places.node_count == 1  # not tried again


def test_an_actor_that_takes_too_long_to_start_is_given_up(ray: FakeRay, clock: Clock) -> None:
    ray.add_node("a" * 20, 2)
    spawn = spawner()
    places = placement(ray, clock, spawn)
    places.start()
    ray.add_node("b" * 20, 2)
    later(clock)
    places.poll()
    later(clock, ACTOR_START_TIMEOUT_S + 1)
    change = places.poll()
    assert change.ready == {} and spawn.started["bbbbbbbbbbbb-0"].killed
    assert not places.starting


def test_max_nodes_caps_the_nodes_that_join(ray: FakeRay, clock: Clock) -> None:
    ray.add_node("a" * 20, 2)
    spawn = spawner()
    places = placement(ray, clock, spawn, max_nodes=2)
    places.start()
    ray.add_node("b" * 20, 2)
    ray.add_node("c" * 20, 2)
    later(clock)
    places.poll()
    assert sorted(spawn.started) == ["aaaaaaaaaaaa-0", "bbbbbbbbbbbb-0"]
    ray.remove_node("b" * 20)  # a place is free again: the next node takes it
    later(clock)
    places.poll()
    assert "cccccccccccc-0" in spawn.started


def test_close_ends_every_actor_started_even_those_still_starting(
    ray: FakeRay, clock: Clock
) -> None:
    ray.add_node("a" * 20, 2)
    spawn = spawner()
    places = placement(ray, clock, spawn)
    places.start()
    ray.add_node("b" * 20, 2)
    later(clock)
    places.poll()
    places.close()
    assert all(actor.killed for actor in spawn.started.values())


def documented_actor_counts() -> dict[int, int]:
    """The table of docs/cluster.md's "Actors per node": cores -> actors."""
    section = DOCS.read_text().split("## Actors per node", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\|\s*(\d+)\s*\|\s*(\d+)\s*\|", section, re.MULTILINE)
    return {int(cores): int(actors) for cores, actors in rows}


def test_auto_gives_the_documented_actors_per_node_for_each_cpu_count() -> None:
    table = documented_actor_counts()
    assert len(table) >= 6 and table[2] == 1  # this project's 2-core machine: one actor
    assert {cores: actors_for("auto", cores) for cores in table} == table
    assert actors_for(2, 16) == 2  # a number still means that number


def test_actors_per_node_is_auto_by_default_and_a_number_still_works() -> None:
    base = {"model": {"name": "ppocr"}, "input": {"images": "x"}, "output": {"parquet": "y"}}
    assert RunConfig.parse(base).cluster.actors_per_node == "auto"
    assert RunConfig.parse(base, ["cluster.actors_per_node=2"]).cluster.actors_per_node == 2
    for bad in ("0", "many", "true"):
        with pytest.raises(ConfigError, match=r"cluster\.actors_per_node"):
            RunConfig.parse(base, [f"cluster.actors_per_node={bad}"])
