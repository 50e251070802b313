from __future__ import annotations

import json
import subprocess
import sys

import distinfer


def test_public_api_is_small_sorted_and_resolves() -> None:
    assert distinfer.__all__ == sorted(distinfer.__all__)
    for name in distinfer.__all__:
        assert getattr(distinfer, name) is not None
    assert issubclass(distinfer.InputError, ValueError)
    assert issubclass(distinfer.ActorDiedError, distinfer.WorkerError)


def loaded_after(module: str, candidates: tuple[str, ...]) -> list[str]:
    """Which of ``candidates`` importing ``module`` loads, in a fresh interpreter."""
    code = (
        f"import json, sys, {module}; "
        f"print(json.dumps(sorted(m for m in {candidates!r} if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return list(json.loads(out.stdout))


def test_importing_the_in_process_api_does_not_load_ray_or_pyav() -> None:
    assert loaded_after("distinfer", ("ray", "av")) == []


def test_ray_processes_import_only_what_they_use() -> None:
    # Each import is start-up time of every job: the collector never runs a model,
    # and no process needs PyAV before it meets a video.
    assert loaded_after("distinfer.distributed._collector", ("openvino", "av", "pydantic")) == []
    assert loaded_after("distinfer.distributed._actor", ("av",)) == []
    assert loaded_after("distinfer.distributed._driver", ("av",)) == []
