"""``distinfer init``: a starter job file a new user can edit and run."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from distinfer import ConfigError, RunConfig
from distinfer._main import main


def test_init_writes_a_job_that_validates_and_refuses_to_overwrite(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    first = CliRunner().invoke(main, ["init", str(job)])
    assert first.exit_code == 0, first.output
    (tmp_path / "images").mkdir()  # the starter's input folder
    config = RunConfig.load(job)
    config.check_paths()
    assert (config.model.name, config.input.images) == ("ppocr-det", ["images/"])
    assert config.output.parquet == "out/results"

    before = job.read_text()
    again = CliRunner().invoke(main, ["init", str(job)])
    assert again.exit_code == 2 and "exists" in again.output
    assert job.read_text() == before


def test_an_empty_job_file_points_at_init(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="distinfer init"):
        RunConfig.load(empty)
