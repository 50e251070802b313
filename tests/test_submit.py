"""`distinfer submit` against a real head with the job API and token authentication.

The head is a ``ray.cluster_utils.Cluster`` with its dashboard on 127.0.0.1 (the job
API lives there); the job runs `distinfer run` inside the cluster and writes results
that the test reads back.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from _jobs import colour_of, labels_of, write_images, write_job
from click.testing import CliRunner

from distinfer import read_results
from distinfer._main import main

# A head as cluster.yaml starts one: token authentication on (a head started without
# RAY_AUTH_MODE=token does not enforce it), distinfer installed (its command on PATH).
# It runs in its own process, so this process's Ray client state plays no part.
HEAD = """
import socket, sys
from ray.cluster_utils import Cluster
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
# Ports of its own: the suite's local Ray already holds Ray's default dashboard and
# job-agent ports, and a head whose agent cannot bind has no job API.
cluster = Cluster(initialize_head=True, head_node_args={
    "num_cpus": 1, "include_dashboard": True, "dashboard_host": "127.0.0.1",
    "dashboard_port": free_port(), "dashboard_agent_listen_port": free_port()})
print(cluster.head_node.address_info["webui_url"], flush=True)
sys.stdin.read()
cluster.shutdown()
"""


@pytest.fixture(scope="module")
def head_with_job_api() -> Iterator[str]:
    env = {
        **os.environ,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_AUTH_MODE": "token",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    head = subprocess.Popen(
        [sys.executable, "-c", HEAD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert head.stdout is not None and head.stdin is not None
    url = head.stdout.readline().strip()
    try:
        assert url.startswith("127.0.0.1:"), url
        yield url
    finally:
        head.stdin.close()
        head.wait(timeout=60)


def submit_images(url: str, tmp: Path, images: int, **env: str) -> subprocess.CompletedProcess[str]:
    """`distinfer submit` of a job over ``images`` generated images, results under ``tmp``."""
    write_images(tmp / "imgs", images)
    path = write_job(tmp, input={"images": str(tmp / "imgs")})
    return subprocess.run(
        [sys.executable, "-m", "distinfer", "submit", str(path), "--address", f"http://{url}"],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", **env},
    )


def test_submit_runs_the_job_on_the_cluster_with_token_auth(
    head_with_job_api: str, tmp_path: Path
) -> None:
    done = submit_images(head_with_job_api, tmp_path, 6, RAY_AUTH_MODE="token")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "submitted job" in done.stdout and "SUCCEEDED" in done.stdout
    rows = read_results(tmp_path / "results").to_pylist()
    assert [r["index"] for r in rows] == list(range(6))
    assert labels_of(rows) == [colour_of(int(Path(r["source"]).stem[3:])) for r in rows]


def test_submit_with_a_wrong_token_is_refused_by_the_head(
    head_with_job_api: str, tmp_path: Path
) -> None:
    done = submit_images(
        head_with_job_api, tmp_path, 1, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="0" * 32
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "cannot submit" in done.stderr
    assert "Invalid authentication token" in done.stderr, done.stderr
    assert "submitted job" not in done.stdout
    assert not (tmp_path / "results").exists()


class RecordingClient:
    """Stands in for Ray's JobSubmissionClient: keeps what would be sent to the cluster."""

    submitted: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, address: str) -> None:
        self.address = address

    def submit_job(self, **job: Any) -> str:
        self.submitted.append(job)
        return "raysubmit_recorded"


def test_submit_sends_no_credential_and_warns_of_relative_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray.job_submission

    secret = "SECRET-submit-8Hw2"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_SESSION_TOKEN", secret + "-token")
    monkeypatch.setattr(ray.job_submission, "JobSubmissionClient", RecordingClient)
    (tmp_path / "pages").mkdir()
    (tmp_path / "job.yaml").write_text(
        "model: {name: ppocr-det}\ninput: {images: pages}\n"
        "output: {parquet: out/results, video: s3://bucket/annotated.mp4}\n"
    )
    done = CliRunner().invoke(
        main, ["submit", str(tmp_path / "job.yaml"), "--address", "http://head:8265", "--no-follow"]
    )
    assert done.exit_code == 0, done.output
    (job,) = RecordingClient.submitted
    assert set(job["runtime_env"]) == {"working_dir", "excludes"}  # no env_vars at all
    assert secret not in repr(job)
    assert "warning: output.parquet: out/results is a relative local path" in done.output
    assert "output.video" not in done.output  # a URI: fine wherever the job runs
