"""``benchmarks/run.py``: every benchmark's options parse, and a run writes its JSON.

The benchmarks themselves are not run here beyond the cheapest one at its
smallest size: their figures mean something only on a quiet machine.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from benchmarks._runner import BENCHMARKS, main, options_of, parser_for


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_each_benchmark_says_what_it_measures_and_its_options(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])

    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert (BENCHMARKS[name].__doc__ or "").splitlines()[0] in out
    assert "--results-dir" in out


def test_without_a_name_it_lists_the_benchmarks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    listing = capsys.readouterr().out
    assert all(f"  {name} " in listing for name in BENCHMARKS)
    assert main([]) == 2


def test_shared_options_take_each_benchmarks_own_defaults() -> None:
    args = parser_for(["raydata", "actors-per-node"]).parse_args(
        ["raydata", "actors-per-node", "--seconds", "2", "--set", "cluster.x=1"]
    )

    raydata, actors = options_of("raydata", args), options_of("actors-per-node", args)
    assert (raydata.images, raydata.seconds, raydata.overrides) == (200, 2.0, ("cluster.x=1",))
    assert (actors.images, actors.seconds, actors.repeat) == (400, 2.0, 2)


def test_unknown_names_and_options_are_usage_errors() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["warp"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["collector", "--crops", "5"])  # cls's option
    assert exit_info.value.code == 2


def test_a_run_writes_its_command_machine_and_figures_beside_the_others(tmp_path: Path) -> None:
    argv = ["engine-probe", "--images", "2", "--results-dir", str(tmp_path)]

    assert main(argv) == 0

    doc = json.loads((tmp_path / "engine-probe.json").read_text())
    assert (
        doc["command"]
        == f"python benchmarks/run.py engine-probe --images 2 --results-dir {tmp_path}"
    )
    assert datetime.fromisoformat(doc["date"]).tzinfo is not None
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["cpu_model"]
    assert doc["machine"]["python"] and doc["machine"]["openvino"] and doc["machine"]["ray"]
    assert doc["options"] == {"images": 2}
    figures = doc["figures"]
    assert figures["probe_full_vs_inference"] == pytest.approx(
        figures["probe_full_pipeline_fps"] / figures["probe_inference_alone_fps"]
    )
    assert doc["failed"] == {} and doc["skipped"] == {}
