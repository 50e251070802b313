"""Secure defaults: the embedded Ray on loopback with token authentication and no job
API; configuration loaded safely; nothing from the inputs unpickled or executed."""

from __future__ import annotations

import ast
import http.client
import json
import os
import re
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from _jobs import write_images, write_job

import distinfer
from distinfer import RunConfig

PACKAGE = Path(distinfer.__file__).parent


def answer_to_job_api(port: int) -> str:
    """What ``port`` answers to ``GET /api/jobs/`` (Ray's job submission API): "jobs"
    (the list: an open job API), "metrics" (Prometheus text), an HTTP status such as
    "401" (token authentication demanded), "not http", or "refused" (nothing there)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/jobs/", timeout=2) as reply:
            body = reply.read(65536)
    except urllib.error.HTTPError as exc:
        return str(exc.code)
    except urllib.error.URLError as exc:
        return "refused" if isinstance(exc.reason, ConnectionRefusedError) else "not http"
    except (OSError, http.client.HTTPException):
        return "not http"  # e.g. a gRPC server
    if body.startswith(b"# HELP") or body.startswith(b"# TYPE"):
        return "metrics"
    try:
        json.loads(body)
    except ValueError:
        return "other"
    return "jobs"


def test_the_embedded_ray_listens_on_loopback_only_with_token_auth_and_no_job_api(
    tmp_path: Path, cli: Any, processes: Any
) -> None:
    write_images(tmp_path / "imgs", 150)
    config = write_job(
        tmp_path,
        input={"images": str(tmp_path / "imgs")},
        output={"rows_per_part": 10},
        cluster={"items_per_unit": 2},
    )
    child = cli.start("run", str(config))  # no loopback switch in its environment
    tree: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 90
        while not (tmp_path / "results" / "part-000000000000-000000000009.parquet").exists():
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        # Every Ray process is up by now. The run is paused while they are looked at
        # and asked, so that a run ending early cannot take them away first.
        os.kill(child.pid, signal.SIGSTOP)
        try:
            tree = processes.descendants(child.pid)
            sockets = processes.listening(list(tree))
            servers = [pid for pid, cmd in tree.items() if "gcs_server" in cmd or "raylet" in cmd]
            auth_modes = {processes.environ(pid).get("RAY_AUTH_MODE") for pid in servers}
            answers = {s.port: answer_to_job_api(s.port) for s in sockets}
        finally:
            os.kill(child.pid, signal.SIGCONT)
        _, err = child.communicate(timeout=90)
    finally:
        child.kill()
        processes.end(tree)
    assert child.returncode == 0, err[-3000:]

    titles = " ".join(tree.values())
    assert "gcs_server" in titles and "raylet" in titles and "ray::InferenceActor" in titles
    listeners = {s.pid for s in sockets}
    assert any("gcs_server" in tree[pid] for pid in listeners)
    assert any("raylet" in tree[pid] for pid in listeners)
    exposed = [(s.address, s.port, tree[s.pid][:60]) for s in sockets if not s.loopback]
    assert exposed == []
    assert "refused" not in answers.values()  # asked while they listened
    assert "jobs" not in answers.values()  # no open job API
    # ... nor one behind the token: Ray's dashboard head serves its metrics, not its API
    # (with cluster.dashboard: true it answers 401 here, as every API does without the token)
    heads = {s.port for s in sockets if "dashboard/dashboard.py" in tree[s.pid]}
    assert {answers[port] for port in heads} <= {"metrics", "not http"}, answers
    # cluster.metrics is off: no node's agent serves metrics (the endpoint that would carry
    # distinfer's series). Ray's head processes serve their own, on fixed ports (autoscaler
    # 44217, dashboard head 44227), on loopback: Ray has no switch for those.
    owners = {s.port: tree[s.pid] for s in sockets}
    serving = [owners[port] for port, answer in answers.items() if answer == "metrics"]
    assert [cmd for cmd in serving if "autoscaler" not in cmd and "dashboard.py" not in cmd] == []
    assert auth_modes == {"token"}  # distinfer asks for it; no RAY_* in the CLI's environment


def test_defaults_keep_the_dashboard_off_and_token_authentication_on() -> None:
    config = RunConfig.parse(
        {"model": {"name": "ppocr"}, "input": {"images": "x"}, "output": {"parquet": "y"}}
    )
    assert config.cluster.dashboard is False and config.cluster.address is None
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"RAY_AUTH_MODE\W+disabled", text), path
        assert "0.0.0.0" not in text, path


#: Calls that would run or unpickle what they are given.
UNSAFE_CALLS = {
    "pickle.load",
    "pickle.loads",
    "cloudpickle.load",
    "cloudpickle.loads",
    "marshal.load",
    "marshal.loads",
    "shelve.open",
    "yaml.load",
    "yaml.unsafe_load",
    "yaml.full_load",
    "eval",
    "exec",
    "compile",
    "os.system",
    "os.popen",
}


def dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return ""


def test_nothing_from_the_inputs_is_unpickled_or_executed() -> None:
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            name = dotted(node.func)
            keywords = {k.arg: k.value for k in node.keywords}
            allow_pickle = keywords.get("allow_pickle")
            shell = keywords.get("shell")
            if (
                name in UNSAFE_CALLS
                or (isinstance(allow_pickle, ast.Constant) and allow_pickle.value is True)
                or (isinstance(shell, ast.Constant) and shell.value is True)
            ):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {name}")
    assert found == []
