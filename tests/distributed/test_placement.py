"""``actors_per_node: auto`` gives the count docs/cluster.md documents for each number of
cores; a number still means that number."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from distinfer import ConfigError, RunConfig
from distinfer.distributed._placement import actors_for

DOCS = Path(__file__).parents[2] / "docs" / "cluster.md"


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
