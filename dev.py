#!/usr/bin/env python3
"""Set everything up and run: `python3 dev.py demo` or `python3 dev.py test`
(`python3 dev.py docs` rewrites docs/config.md from the config's descriptions).

Creates .venv next to this file on first use (and reinstalls when
pyproject.toml changes), then runs the demo job or the checks: ruff, mypy,
pytest. Needs only python3.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".distinfer-installed"


def sh(*args: str | Path) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], cwd=ROOT, check=True)


def ensure_venv() -> None:
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
        sh(BIN / "python", "-m", "pip", "install", "-q", "--upgrade", "pip")
    sh(BIN / "python", "-m", "pip", "install", "-q", "-e", ".[dev]")
    STAMP.write_text(wanted)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command not in ("demo", "test", "docs"):
        print(__doc__, file=sys.stderr)
        return 2
    ensure_venv()
    try:
        if command == "docs":  # docs/config.md, from the descriptions in distinfer/_config.py
            sh(BIN / "python", "-c", "from distinfer._config_doc import write; write()")
        elif command == "demo":
            sh(BIN / "distinfer", "demo-data", "out/demo/inputs")
            sh(BIN / "distinfer", "run", "configs/demo.yaml", "--overwrite", *argv[1:])
        else:
            sources = ("distinfer", "tests", "examples", "benchmarks", "dev.py")
            sh(BIN / "ruff", "check", *sources)
            sh(BIN / "ruff", "format", "--check", *sources)
            sh(BIN / "mypy")
            sh(BIN / "python", "-m", "pytest", *argv[1:])
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
