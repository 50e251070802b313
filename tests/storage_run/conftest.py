"""Runs that read and write object storage: the inputs (``_s3_jobs``) in a bucket of
their own and on a local disk, shared by the session, and a local run's rows."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from _s3 import Bucket, MotoServer
from _s3_jobs import Inputs, comparable, write_inputs

from distinfer import read_results


@pytest.fixture(scope="session")
def inputs(s3_server: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    bucket = Bucket(f"run-{uuid.uuid4().hex[:12]}", s3_server.endpoint)
    s3_server.create_bucket(bucket.name)
    return write_inputs(tmp_path_factory.mktemp("storage-run"), bucket)


@pytest.fixture(scope="session")
def local_rows(ray_session: Any, inputs: Inputs) -> list[dict[str, Any]]:
    """What the job writes when everything is on a local disk."""
    from distinfer import RunConfig, run

    out = inputs.local / "local-out"
    run(RunConfig.parse(inputs.job("local", str(out))))
    return comparable(read_results(out / "results").to_pylist(), inputs.root("local"))
