"""Credentials and access against a moto server that checks signatures and IAM policies.

moto's auth switch is process-global, so this server runs in its own process and
the shared one stays open. Each process reads its own credentials: from the
environment, or from AWS profile files when the environment has no key; no
secret ever shows in a message, a repr, a log line or a pickle.
"""

from __future__ import annotations

import http.server
import json
import logging
import os
import pickle
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from _s3 import MotoProcess, client

from distinfer.storage import (
    Location,
    StorageAccessError,
    StorageOptions,
    StorageUnavailableError,
    resolve_location,
)
from distinfer.storage._store import instance_role_only

BUCKET = "guarded"
SECRET = "SECRET-do-not-print-7Qx2"
_ALLOW_S3 = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}


@dataclass(frozen=True)
class AuthServer:
    endpoint: str
    reader: tuple[str, str]  # allowed everything on S3
    nobody: tuple[str, str]  # valid keys, no permission


@pytest.fixture(scope="module")
def auth_server() -> Iterator[AuthServer]:
    with MotoProcess() as server:
        s3 = client(server.endpoint)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="in/a.jpg", Body=b"jpeg")
        iam = client(server.endpoint, "iam")
        server.enforce_auth(after_requests=5)  # exactly the five IAM calls below
        keys = []
        for user in ("reader", "nobody"):
            iam.create_user(UserName=user)
            key = iam.create_access_key(UserName=user)["AccessKey"]
            keys.append((key["AccessKeyId"], key["SecretAccessKey"]))
        iam.put_user_policy(
            UserName="reader", PolicyName="s3", PolicyDocument=json.dumps(_ALLOW_S3)
        )
        yield AuthServer(server.endpoint, keys[0], keys[1])


def _env(monkeypatch: pytest.MonkeyPatch, server: AuthServer, key: str, secret: str) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


def _loc(key: str = "in/a.jpg", bucket: str = BUCKET, **options: float) -> Location:
    return resolve_location(f"s3://{bucket}/{key}", ".", StorageOptions(**options))  # type: ignore[arg-type]


def test_good_credentials_pass(monkeypatch: pytest.MonkeyPatch, auth_server: AuthServer) -> None:
    _env(monkeypatch, auth_server, *auth_server.reader)
    loc = _loc()
    loc.fs.check_access(loc.path)
    loc.parent.fs.check_access(loc.parent.path + "/")
    assert loc.fs.read(loc.path, 100) == b"jpeg"


def test_denied_access_names_the_uri_and_what_to_do(
    monkeypatch: pytest.MonkeyPatch, auth_server: AuthServer
) -> None:
    _env(monkeypatch, auth_server, *auth_server.nobody)
    loc = _loc("in/")
    with pytest.raises(StorageAccessError) as info:
        loc.fs.check_access(loc.path)
    message = str(info.value)
    assert message.startswith(f"s3://{BUCKET}/in/: access denied (HTTP 403 Forbidden")
    assert "storage.anonymous: true" in message and "Debug source" not in message
    with pytest.raises(PermissionError, match="access denied"):
        loc.fs.info("in/a.jpg")  # one object: a per-item error, as on a local disk


def test_bad_credentials_say_which_variables_to_set(
    monkeypatch: pytest.MonkeyPatch, auth_server: AuthServer
) -> None:
    _env(monkeypatch, auth_server, "AKIAWRONGKEY", SECRET)
    loc = _loc("in/")
    with pytest.raises(StorageAccessError, match="credentials were refused") as info:
        loc.fs.check_access(loc.path)
    assert "InvalidAccessKeyId" in str(info.value)
    assert "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)" in str(info.value)
    _env(monkeypatch, auth_server, auth_server.reader[0], SECRET)
    with pytest.raises(StorageAccessError, match="SignatureDoesNotMatch"):
        _loc("in/").fs.check_access("in/")


def test_a_missing_bucket_is_named(
    monkeypatch: pytest.MonkeyPatch, auth_server: AuthServer
) -> None:
    _env(monkeypatch, auth_server, *auth_server.reader)
    loc = _loc("x/", bucket="no-such-bucket")
    with pytest.raises(StorageAccessError, match="no-such-bucket/x/: the bucket does not exist"):
        loc.fs.check_access(loc.path)


def test_profile_files_are_read_when_the_environment_has_no_key(
    monkeypatch: pytest.MonkeyPatch, auth_server: AuthServer, tmp_path: Path
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[reader]\naws_access_key_id = {auth_server.reader[0]}\n"
        f"aws_secret_access_key = {auth_server.reader[1]}\n"
        f"[nobody]\naws_access_key_id = {auth_server.nobody[0]}\n"
        f"aws_secret_access_key = {auth_server.nobody[1]}\n"
    )
    config = tmp_path / "config"
    config.write_text(
        f"[profile reader]\nregion = us-east-1\nendpoint_url = {auth_server.endpoint}\n"
    )
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "reader")
    loc = _loc()  # the endpoint too comes from the profile
    loc.fs.check_access(loc.path)
    assert loc.fs.read(loc.path, 100) == b"jpeg"
    assert auth_server.reader[1].encode() not in pickle.dumps(loc)
    monkeypatch.setenv("AWS_PROFILE", "nobody")
    with pytest.raises(StorageAccessError, match="access denied"):
        _loc(endpoint=auth_server.endpoint).fs.check_access("in/")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, endpoint: str) -> None:
    """No key in the environment nor in profile files: only an instance role is left."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))


def test_no_credentials_at_all_is_said_at_once_naming_what_to_set(
    monkeypatch: pytest.MonkeyPatch, auth_server: AuthServer, tmp_path: Path
) -> None:
    _no_credentials(monkeypatch, tmp_path, auth_server.endpoint)
    metadata = f"http://127.0.0.1:{_closed_port()}"  # no instance metadata service here
    monkeypatch.setenv("AWS_METADATA_ENDPOINT", metadata)
    assert instance_role_only("s3", StorageOptions(), os.environ) == metadata
    started = time.monotonic()
    with pytest.raises(StorageAccessError) as info:
        _loc("in/").fs.check_access("in/")
    assert time.monotonic() - started < 5  # not the 120 s retry budget
    message = str(info.value)
    assert message.startswith(f"s3://{BUCKET}/in/: no credentials found")
    assert "instance metadata service: Connection refused" in message
    assert "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in message
    assert "storage.anonymous: true" in message


class _NoRole(http.server.BaseHTTPRequestHandler):
    """An instance metadata service on a machine with no role: 404 to every request."""

    def _refuse(self) -> None:
        self.send_error(404)

    do_GET = do_PUT = _refuse

    def log_message(self, *args: object) -> None:
        pass


def test_an_instance_role_that_gives_nothing_is_no_credentials_not_denied_access(
    monkeypatch: pytest.MonkeyPatch, auth_server: AuthServer, tmp_path: Path
) -> None:
    _no_credentials(monkeypatch, tmp_path, auth_server.endpoint)
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NoRole) as metadata:
        threading.Thread(target=metadata.serve_forever, daemon=True).start()
        monkeypatch.setenv("AWS_METADATA_ENDPOINT", f"http://127.0.0.1:{metadata.server_port}")
        try:
            with pytest.raises(StorageAccessError, match="no credentials found") as info:
                _loc("in/", retry_timeout_s=5).fs.check_access("in/")
        finally:
            metadata.shutdown()
    assert "HTTP 404" in str(info.value) and "access denied" not in str(info.value)


@pytest.mark.parametrize(
    ("variable", "options"),
    [
        ("AWS_ACCESS_KEY_ID", {}),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", {}),
        ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", {}),
        (None, {"anonymous": True}),
    ],
)
def test_the_metadata_service_is_not_asked_when_another_source_is_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str | None, options: dict[str, bool]
) -> None:
    _no_credentials(monkeypatch, tmp_path, "http://127.0.0.1:9")
    if variable is not None:
        monkeypatch.setenv(variable, "set")
    assert instance_role_only("s3", StorageOptions(**options), os.environ) is None
    assert instance_role_only("gs", StorageOptions(), os.environ) is None  # S3 only


def test_no_secret_in_messages_reprs_logs_or_pickles(
    monkeypatch: pytest.MonkeyPatch, auth_server: AuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    messages: list[str] = []
    _env(monkeypatch, auth_server, "AKIAWRONGKEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SECRET + "-token")
    denied = _loc("in/a.jpg")
    unreachable = _loc("in/a.jpg", endpoint="http://127.0.0.1:9", retry_timeout_s=0.5)
    for loc, error in ((denied, StorageAccessError), (unreachable, StorageUnavailableError)):
        with pytest.raises(error) as access:
            loc.fs.check_access(loc.path)
        with pytest.raises(OSError if loc is denied else error) as read:
            loc.fs.read(loc.path, 100)
        with pytest.raises(OSError if loc is denied else error) as write:
            loc.fs.write("out/x", b"x")
        for exc in (access.value, read.value, write.value):
            messages += [str(exc), repr(exc), str(exc.__cause__)]
        messages += [repr(loc), repr(loc.fs), str(pickle.dumps(loc))]
    messages += [record.getMessage() for record in caplog.records]
    assert messages and not [m for m in messages if SECRET in m]
