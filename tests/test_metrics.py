"""Metrics: a run with ``cluster.metrics`` serves distinfer's series on Ray's Prometheus
endpoint (embedded Ray: on 127.0.0.1 only), while it runs."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from _jobs import write_images, write_job

#: The series the run must show: from the inference actor and from the collector.
EXPECTED = (
    "ray_distinfer_items_done_total",
    "ray_distinfer_stage_latency_s_bucket",
    "ray_distinfer_committed_index",
    "ray_distinfer_reorder_buffer_rows",
    "ray_distinfer_items_per_s",
    "ray_distinfer_units_in_flight",
    "ray_distinfer_actors",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def series(port: int) -> dict[str, list[str]]:
    """distinfer's lines on the endpoint, by series name; empty while it is not up."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
            text = reply.read().decode()
    except OSError:
        return {}
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("ray_distinfer_"):
            found.setdefault(line.split("{", 1)[0], []).append(line)
    return found


def listening_addresses(port: int) -> set[str]:
    """The local addresses a TCP socket listens on at ``port`` (from /proc/net)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                raw = bytes.fromhex(address)
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                found.add(str(ipaddress.ip_address(words)))
    return found


def test_a_run_with_metrics_serves_distinfers_series_on_loopback(tmp_path: Path) -> None:
    write_images(tmp_path / "imgs", 2000)  # 10 to 15 s of work here
    port = free_port()
    config = write_job(
        tmp_path,
        input={"images": str(tmp_path / "imgs")},
        cluster={
            "items_per_unit": 1,
            "units_in_flight_per_actor": 1,
            "metrics": True,
            "metrics_port": port,
            "progress": "lines",
        },
    )
    stats = tmp_path / "stats.json"
    # Ray's own setting: actors push their metrics every 0.5 s instead of every 10 s.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["RAY_metrics_report_interval_ms"] = "500"
    child = subprocess.Popen(
        [sys.executable, "-m", "distinfer", "run", str(config), "--stats-json", str(stats)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    found: dict[str, list[str]] = {}
    addresses: set[str] = set()
    try:
        deadline = time.monotonic() + 120
        while child.poll() is None and time.monotonic() < deadline:
            found = series(port)
            if all(name in found for name in EXPECTED):
                addresses = listening_addresses(port)
                break
            time.sleep(0.5)
        _, err = child.communicate(timeout=180)
    finally:
        child.kill()
    assert child.returncode == 0, err[-3000:]
    assert sorted(n for n in EXPECTED if n not in found) == [], sorted(found)
    assert addresses == {"127.0.0.1"}
    done = [line for line in found["ray_distinfer_items_done_total"] if 'node="' in line]
    assert done and all('run="' in line for line in done)
    stages = {line.split('stage="', 1)[1].split('"', 1)[0] for line in found[EXPECTED[1]]}
    assert stages >= {"decode"} and len(stages) >= 2  # decoding and the model's stage
    endpoint = f"http://127.0.0.1:{port}/metrics"
    assert f"metrics: {endpoint}" in err
    assert json.loads(stats.read_text())["metrics_endpoints"] == [endpoint]
