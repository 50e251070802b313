"""Object storage that cannot be used as configured: exit 2 before any Ray process starts
(once with ``import ray`` made impossible; the other cases run the CLI in-process, which
is faster), naming the key, the URI and the cause."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _s3 import MotoProcess, client
from _s3_jobs import Inputs, write_config
from click.testing import CliRunner

from distinfer._main import main

SECRET = "SECRET-never-shown-5Kq9"


@pytest.fixture(scope="module")
def guarded() -> Iterator[str]:
    """A server that checks every signature: only keys it issued are accepted."""
    with MotoProcess() as server:
        s3 = client(server.endpoint)
        s3.create_bucket(Bucket="guarded")
        s3.put_object(Bucket="guarded", Key="in/a.png", Body=b"png")
        server.enforce_auth(after_requests=0)
        yield server.endpoint


def test_refused_credentials_exit_2_naming_the_key_and_what_to_set(
    guarded: str, inputs: Inputs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = inputs.job("local", "s3://guarded/out", storage={"endpoint": guarded})
    job["input"] = {"images": ["s3://guarded/in/"]}
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANOTISSUED")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    done = CliRunner().invoke(main, ["run", str(write_config(tmp_path, job))])
    assert done.exit_code == 2, done.output
    assert "error: input.images[0]: s3://guarded/in/: the credentials were refused" in done.output
    assert "InvalidAccessKeyId" in done.output and "AWS_ACCESS_KEY_ID" in done.output
    assert SECRET not in done.output and "Traceback" not in done.output


def test_no_credentials_anywhere_exit_2_at_once_saying_what_to_set(
    guarded: str, inputs: Inputs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = inputs.job("local", "s3://guarded/out", storage={"endpoint": guarded})
    job["input"] = {"images": ["s3://guarded/in/"]}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with socket.socket() as closed:  # where no instance metadata service listens
        closed.bind(("127.0.0.1", 0))
        monkeypatch.setenv("AWS_METADATA_ENDPOINT", f"http://127.0.0.1:{closed.getsockname()[1]}")
    done = CliRunner().invoke(main, ["run", str(write_config(tmp_path, job))])
    assert done.exit_code == 2, done.output
    assert "error: input.images[0]: s3://guarded/in/: no credentials found" in done.output
    assert "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in done.output
    assert "Traceback" not in done.output


def test_a_missing_bucket_exits_2_before_ray_starts(
    inputs: Inputs, cli: Any, tmp_path: Path
) -> None:
    job = inputs.job("s3", inputs.bucket.uri("refused"))
    job["input"]["images"] = ["s3://no-such-bucket-q7/in/"]
    done = cli.run("run", str(write_config(tmp_path, job)), without_ray=True, timeout_s=60)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "error: input.images[0]: s3://no-such-bucket-q7/in/: the bucket does not exist" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr and inputs.keys("refused/") == []


@pytest.mark.parametrize(
    ("key", "change", "words"),
    [
        ("output.parquet", {"output": {"parquet": "s3://no-such-bucket-q7/out"}}, "bucket"),
        ("input.videos[0]", {"input": {"videos": ["{root}/in/nothing.mp4"]}}, "does not exist"),
        ("model.path", {"model": {"path": "{root}/models/none.xml"}}, "does not exist"),
        ("output.video", {"output": {"video": "gopher://x/v.mp4"}}, "unsupported scheme"),
    ],
)
def test_a_location_that_cannot_be_used_exits_2_naming_its_key(
    inputs: Inputs, tmp_path: Path, key: str, change: dict[str, Any], words: str
) -> None:
    job = inputs.job("s3", inputs.bucket.uri("refused"))
    for section, values in change.items():
        filled = {k: _fill(v, inputs.root("s3")) for k, v in values.items()}
        job[section] = {**job[section], **filled}
    done = CliRunner().invoke(main, ["run", str(write_config(tmp_path, job))])
    assert done.exit_code == 2, done.output
    assert f"error: {key}: " in done.output and words in done.output
    assert "Traceback" not in done.output
    assert inputs.keys("refused/") == []


def _fill(value: Any, root: str) -> Any:
    if isinstance(value, list):
        return [v.replace("{root}", root) for v in value]
    return value.replace("{root}", root)
