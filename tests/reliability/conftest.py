"""Fixtures for the failure and security tests: the shared images and what a clean run of
them writes (the CLI and the process tree: ``cli`` and ``processes``, in the suite's
conftest)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _jobs import job_config, write_images

from distinfer import RunConfig, read_results, run


def rows_without_node(folder: Path) -> list[dict[str, Any]]:
    """The results of a run, less the column that says which actor did each row."""
    return [{k: v for k, v in r.items() if k != "node"} for r in read_results(folder).to_pylist()]


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """160 small PNGs shared by the failure tests (``write_images``)."""
    folder = tmp_path_factory.mktemp("reliability") / "imgs"
    write_images(folder, 160)
    return folder


@pytest.fixture(scope="session")
def clean_rows(ray_session: Any, images: Path) -> list[dict[str, Any]]:
    """What a run on ``images`` writes when nothing fails."""
    out = images.parent / "clean"
    run(RunConfig.parse(job_config(out, input={"images": str(images)})))
    return rows_without_node(out / "results")


@pytest.fixture
def read_rows() -> Callable[[Path], list[dict[str, Any]]]:
    """``read_rows(results_folder)``: rows without ``node``, comparable to ``clean_rows``."""
    return rows_without_node
