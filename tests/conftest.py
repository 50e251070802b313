"""Shared fixtures: one local Ray session for the whole suite, on loopback; one S3
server (moto) for the whole suite, on loopback, with a fresh bucket per test; the
CLI in a subprocess and the process tree under a test (``_procs``)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from _procs import Cli, Processes
from _s3 import DUMMY_CREDENTIALS, Bucket, MotoServer, use_dummy_credentials

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before ray is imported
# Ray workers inherit the environment of the process that starts Ray: give them
# (and every object store built here) credentials before any ray.init. A store
# without any would ask the cloud's instance-metadata address.
use_dummy_credentials()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoServer]:
    """moto's S3 server on 127.0.0.1, shared by the whole session."""
    with MotoServer() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    """A new, empty bucket, with this test's environment pointing at its server."""
    bucket = Bucket(f"test-{uuid.uuid4().hex[:16]}", s3_server.endpoint)
    s3_server.create_bucket(bucket.name)
    for key, value in DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    return bucket


@pytest.fixture(scope="session")
def ray_session() -> Iterator[Any]:
    """A real local Ray instance shared by every test that needs one."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def processes() -> Processes:
    return Processes()


@pytest.fixture(scope="session")
def cli() -> Cli:
    return Cli()
