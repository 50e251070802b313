"""The output lock: one run per output, on a local disk (flock) and on object storage (lease)."""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from _s3 import Bucket

from distinfer import OutputError
from distinfer._errors import OutputExistsError
from distinfer.storage import Location, StorageOptions, output_lock, resolve_location

_CHILD = """
import sys, time
from distinfer.storage import output_lock, resolve_location
with output_lock(resolve_location(sys.argv[1], "."), holder_info="child run", expiry_s=60):
    print("held", flush=True)
    time.sleep(600)
"""


def _lock_body(bucket: Bucket, key: str) -> dict[str, object]:
    body = bucket.client().get_object(Bucket=bucket.name, Key=key)["Body"].read()
    record: dict[str, object] = json.loads(body)
    return record


def _foreign_lock(bucket: Bucket, key: str) -> None:
    record = {"format": "distinfer-lock", "host": "elsewhere", "pid": 4242, "token": "theirs"}
    bucket.put(key, json.dumps(record).encode())


def test_local_lock_refuses_a_second_run_naming_the_first(tmp_path: Path) -> None:
    with output_lock(resolve_location(str(tmp_path / "free"), ".")) as lease:
        assert lease.fence is None  # nothing can take a flock over
    out = resolve_location(str(tmp_path / "results"), ".")
    with output_lock(out, holder_info="job A") as lease:
        assert not lease.lost
        refused = pytest.raises(OutputExistsError, match=rf"pid {os.getpid()} on .*job A")
        with refused, output_lock(out):
            pass
    with output_lock(out):
        pass  # released with the first run


def test_object_lock_refuses_a_second_run_and_is_released(s3_bucket: Bucket) -> None:
    out = resolve_location(s3_bucket.uri("results/"), ".")
    with output_lock(out, holder_info="job A", expiry_s=30) as lease:
        record = _lock_body(s3_bucket, "results/_lock")
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
        assert record["info"] == "job A" and record["token"]
        with pytest.raises(OutputExistsError) as refused, output_lock(out, expiry_s=30):
            pass
        message = str(refused.value)
        assert message.startswith(f"output.parquet: {s3_bucket.uri('results')} is being written")
        assert f"pid {os.getpid()} on {socket.gethostname()}, job A" in message
        assert "lock renewed 0 s ago" in message or "lock renewed 1 s ago" in message
        lease.check()
    assert list(out.fs.list(out.path)) == []  # released: the lock object is gone
    with output_lock(out, expiry_s=30):
        pass


def test_a_lock_not_renewed_for_its_expiry_is_taken_over(s3_bucket: Bucket) -> None:
    _foreign_lock(s3_bucket, "results/_lock")
    # The expiry comes from the location's storage options.
    out = resolve_location(s3_bucket.uri("results"), ".", StorageOptions(lock_expiry_s=2))
    with pytest.raises(OutputExistsError, match="pid 4242 on elsewhere"), output_lock(out):
        pass
    time.sleep(3.2)  # Last-Modified has whole seconds
    with output_lock(out) as lease:
        assert _lock_body(s3_bucket, "results/_lock")["pid"] == os.getpid()
        lease.check()


def test_two_contenders_for_a_stale_lock_cannot_both_win(s3_bucket: Bucket) -> None:
    _foreign_lock(s3_bucket, "results/_lock")
    out = resolve_location(s3_bucket.uri("results/"), ".")
    time.sleep(2.2)
    outcomes: list[str] = []
    go = threading.Barrier(2)
    hold = threading.Event()

    def contend() -> None:
        go.wait()
        try:
            with output_lock(out, expiry_s=1):
                outcomes.append("won")
                hold.wait(5)
        except OutputExistsError:
            outcomes.append("refused")
            hold.set()

    threads = [threading.Thread(target=contend) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused", "won"]


def test_a_killed_run_on_this_machine_is_taken_over_at_once(s3_bucket: Bucket) -> None:
    out = s3_bucket.uri("results/")
    child = subprocess.Popen([sys.executable, "-c", _CHILD, out], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        assert _lock_body(s3_bucket, "results/_lock")["pid"] == child.pid
        child.kill()  # SIGKILL: no cleanup, the lock object stays
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    started = time.monotonic()
    with output_lock(resolve_location(out, "."), expiry_s=60):  # long before it expires
        assert _lock_body(s3_bucket, "results/_lock")["pid"] == os.getpid()
    assert time.monotonic() - started < 5


def test_renewal_keeps_the_lock_past_its_expiry(s3_bucket: Bucket) -> None:
    out = resolve_location(s3_bucket.uri("results/"), ".")
    with output_lock(out, expiry_s=3) as lease:
        first = _lock_body(s3_bucket, "results/_lock")
        time.sleep(4.5)
        with pytest.raises(OutputExistsError), output_lock(out, expiry_s=3):
            pass
        renewed = _lock_body(s3_bucket, "results/_lock")
        assert renewed["token"] == first["token"]
        assert float(renewed["renewed_at"]) > float(first["renewed_at"]) + 2  # type: ignore[arg-type]
        assert not lease.lost


def test_a_lease_taken_by_another_run_is_lost(s3_bucket: Bucket) -> None:
    out: Location = resolve_location(s3_bucket.uri("results/"), ".")
    with output_lock(out, expiry_s=1) as lease:
        assert lease.fence is not None
        fence = pickle.loads(pickle.dumps(lease.fence))  # as the collector gets it
        fence.check()  # still ours
        _foreign_lock(s3_bucket, "results/_lock")  # as if another run took it over
        with pytest.raises(OutputError, match=r"no longer holds its output lock \(pid 4242"):
            fence.check()  # at once, without waiting for the renewal
        deadline = time.monotonic() + 5
        while not lease.lost and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lease.lost
        with pytest.raises(OutputError, match=r"lost its output lock \(pid 4242 on elsewhere"):
            lease.check()
    assert _lock_body(s3_bucket, "results/_lock")["token"] == "theirs"  # theirs is left alone
