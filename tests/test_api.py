from __future__ import annotations

import subprocess
import sys

import distinfer


def test_public_api_is_small_sorted_and_resolves() -> None:
    assert distinfer.__all__ == sorted(distinfer.__all__)
    for name in distinfer.__all__:
        assert getattr(distinfer, name) is not None
    assert issubclass(distinfer.InputError, ValueError)
    assert issubclass(distinfer.ActorDiedError, distinfer.WorkerError)


def test_importing_the_in_process_api_does_not_load_ray_or_pyav() -> None:
    code = "import sys, distinfer; print(sorted(m for m in ('ray', 'av') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
