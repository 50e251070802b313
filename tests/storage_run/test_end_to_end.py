"""`distinfer run` with every input, the model and every output on S3 only: the rows of a
local run of the same files, nothing left on the local disk but a cache, no secret shown."""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from _s3_jobs import Inputs, comparable, write_config

from distinfer import read_results
from distinfer.sources import probe

# A secret no test data could hold by chance: it must show up nowhere.
SECRET = f"S3CR3T-{uuid.uuid4().hex}"


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_a_run_on_s3_only_writes_what_a_local_run_writes_and_nothing_local(
    inputs: Inputs, local_rows: list[dict[str, Any]], cli: Any, tmp_path: Path
) -> None:
    out = inputs.bucket.uri("e2e")
    job = inputs.job(
        "s3",
        out,
        output={"video": f"{out}/annotated.mp4", "overlays": f"{out}/overlays/"},
    )
    config = write_config(tmp_path / "config", job)
    cwd, cache = tmp_path / "cwd", tmp_path / "cache"
    cwd.mkdir()
    ray_tmp = tempfile.mkdtemp(prefix="rt")  # short: Ray's socket paths must fit
    try:
        done = cli.run(
            "-v",  # INFO records too: more log lines that must not show the secret
            "run",
            str(config),
            cwd=cwd,
            env={
                "AWS_SECRET_ACCESS_KEY": SECRET,  # moto takes any; every process has this
                "XDG_CACHE_HOME": str(cache),
                "RAY_TMPDIR": ray_tmp,
            },
            timeout_s=180,
        )
        ray_files = [p for p in Path(ray_tmp).rglob("*") if p.is_file() and not p.is_socket()]
        ray_logs = b"".join(p.read_bytes() for p in ray_files if p.stat().st_size < 50 << 20)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert done.returncode == 1, done.stderr[-3000:]  # one item failed: the missing object
    assert "done: 49 items (49 this run, 0 resumed), 1 errors" in done.stdout

    rows = read_results(inputs.location(f"{out}/results")).to_pylist()
    assert comparable(rows, inputs.root("s3")) == local_rows
    (missing,) = [r for r in rows if r["error"]]
    assert missing["error"] == f"file not found: {inputs.root('s3')}/in/pages/part0/gone.png"
    assert all(r["source"].startswith("s3://") for r in rows)

    video = probe(inputs.location(f"{out}/annotated.mp4"))
    assert video.frame_count == 20
    overlays = inputs.keys("e2e/overlays/")
    assert len(overlays) == 28 and all(k.endswith(".jpg") for k in overlays)

    # Nothing written on the local disk but the model cache: not in the working folder,
    # not beside the job file.
    assert files_under(cwd) == set()
    assert files_under(config.parent) == {"job.yaml"}
    assert any(p.name == "cls.bin" for p in cache.rglob("*"))

    manifest = inputs.get("e2e/results/_manifest.json")
    parts = [inputs.get(f"e2e/results/{p['file']}") for p in json.loads(manifest)["parts"]]
    assert SECRET.encode() not in manifest and not any(SECRET.encode() in p for p in parts)
    assert SECRET not in repr(rows)  # decoded too: part data may be compressed
    assert SECRET not in done.stdout + done.stderr
    assert SECRET.encode() not in ray_logs
    assert len(ray_files) > 10  # Ray did write its logs there
