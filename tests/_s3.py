"""A real S3 endpoint for tests: moto's server on 127.0.0.1.

``MotoServer`` runs in this process (threads); moto keeps its buckets and its auth
switch in module globals, so a test that turns authentication on needs its own
process: ``MotoProcess``. Ray workers inherit their environment from the process
that started Ray, so ``use_dummy_credentials()`` belongs at conftest import, before
any ``ray.init``.

>>> with MotoServer() as server:  # doctest: +SKIP
...     server.create_bucket("photos")
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import urllib.request
from collections.abc import MutableMapping
from typing import Any

DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
}
REGION = "us-east-1"

_CHILD = """
import logging, sys
logging.getLogger("werkzeug").setLevel(logging.ERROR)
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # until the parent closes our stdin
server.stop()
"""


def use_dummy_credentials(environ: MutableMapping[str, str] = os.environ) -> None:
    """Give this process (and what it starts later) credentials moto accepts,
    unless real ones are set."""
    for key, value in DUMMY_CREDENTIALS.items():
        environ.setdefault(key, value)


def client(endpoint: str, service: str = "s3", **credentials: str) -> Any:
    """A boto3 client for ``service`` on ``endpoint`` (dummy credentials by default)."""
    import boto3

    keys = {
        "aws_access_key_id": credentials.get("key", DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"]),
        "aws_secret_access_key": credentials.get(
            "secret", DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
        ),
    }
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, **keys)


class MotoServer:
    """moto's S3 server on a free port of 127.0.0.1, in this process."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint = ""

    def start(self) -> MotoServer:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def create_bucket(self, name: str) -> None:
        client(self.endpoint).create_bucket(Bucket=name)

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class MotoProcess:
    """moto's server in a child process, so its global auth switch stays its own.

    ``enforce_auth(after_requests=n)`` lets the next ``n`` requests through
    unauthenticated (to create IAM users and keys), then checks every signature
    and IAM policy.
    """

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self.endpoint = ""

    def start(self) -> MotoProcess:
        self._process = subprocess.Popen(
            [sys.executable, "-c", _CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **DUMMY_CREDENTIALS},
        )
        assert self._process.stdout is not None
        port = self._process.stdout.readline().strip()
        if not port:
            raise RuntimeError("moto server process did not start")
        self.endpoint = f"http://127.0.0.1:{port}"
        return self

    def enforce_auth(self, after_requests: int) -> None:
        request = urllib.request.Request(
            f"{self.endpoint}/moto-api/reset-auth",
            data=json.dumps(after_requests).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def stop(self) -> None:
        if self._process is not None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def __enter__(self) -> MotoProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class Bucket:
    """A fresh bucket on a test server: its name, its endpoint, and URIs in it."""

    def __init__(self, name: str, endpoint: str) -> None:
        self.name = name
        self.endpoint = endpoint

    def uri(self, key: str = "") -> str:
        return f"s3://{self.name}/{key}"

    def client(self) -> Any:
        return client(self.endpoint)

    def put(self, key: str, body: bytes) -> None:
        self.client().put_object(Bucket=self.name, Key=key, Body=body)
