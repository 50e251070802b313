"""``distinfer submit``: the same job file, run as a Ray job on a cluster.

The config file's folder is the job's working_dir (uploaded by Ray); the
entrypoint is ``distinfer run`` attached to the cluster (``cluster.address=auto``),
so relative paths in the file resolve inside that uploaded folder, on the node
that runs the job's driver (``relative_outputs`` names the outputs that would end
up there). Nothing else travels: no environment variables, so no credential
(each node reads its own).
distinfer itself must be installed on the cluster (cluster.yaml does that).
Token authentication: the client sends the token Ray finds (``RAY_AUTH_TOKEN``,
``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``) when ``RAY_AUTH_MODE=token``.
"""

from __future__ import annotations

import asyncio
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .._config import RunConfig
from .._errors import WorkerError

#: What not to upload with the working dir.
EXCLUDES = [".venv", ".git", "__pycache__", "*.parquet", "*.mp4"]
#: A head that has just started answers before its job agent is up ("No available
#: agent to submit job, please try again later"): wait this long for it.
AGENT_WAIT_S = 60.0


def relative_outputs(config: RunConfig) -> list[tuple[str, str]]:
    """``(key, value)`` of the outputs written as relative local paths."""
    written = {
        "output.parquet": config.output.parquet,
        "output.video": config.output.video,
        "output.overlays": config.output.overlays,
    }
    return [
        (key, value)
        for key, value in written.items()
        if value is not None and "://" not in value and not value.startswith(("/", "~"))
    ]


def entrypoint(config_name: str, overrides: Sequence[str], overwrite: bool) -> str:
    args = ["distinfer", "run", config_name, "--set", "cluster.address=auto"]
    for item in overrides:
        args += ["--set", item]
    if overwrite:
        args.append("--overwrite")
    return shlex.join(args)


def submit_job(
    config: RunConfig,
    config_path: Path,
    overrides: Sequence[str],
    *,
    address: str,
    follow: bool,
    overwrite: bool,
) -> int:
    """Submit; print the job id; with ``follow``, stream logs and return the exit code."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    deadline = time.monotonic() + AGENT_WAIT_S
    while True:
        try:
            client = JobSubmissionClient(address)
            job_id = client.submit_job(
                entrypoint=entrypoint(config_path.name, overrides, overwrite),
                runtime_env={
                    "working_dir": str(config_path.resolve().parent),
                    "excludes": EXCLUDES,
                },
            )
            break
        except Exception as exc:  # connection, authentication, upload
            if "No available agent" in str(exc) and time.monotonic() < deadline:
                time.sleep(1.0)
                continue
            raise WorkerError(f"cannot submit to {address}: {exc}") from exc
    print(f"submitted job {job_id} to {address}", flush=True)
    if not follow:
        return 0

    async def tail() -> None:
        async for lines in client.tail_job_logs(job_id):
            sys.stdout.write(lines)
            sys.stdout.flush()

    asyncio.run(tail())
    status = client.get_job_status(job_id)
    print(f"job {job_id}: {status}", flush=True)
    if status == JobStatus.SUCCEEDED:
        return 0
    info = client.get_job_info(job_id)
    return 2 if info.driver_exit_code == 2 else 1
