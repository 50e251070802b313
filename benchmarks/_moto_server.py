"""A local S3 server (moto) in a process of its own, so its CPU is measured apart.

``python -m benchmarks._moto_server`` prints its port on one line and serves on
127.0.0.1 until its stdin closes. ``MotoServer`` starts one and stops it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import TracebackType

#: How the server's process is titled in ``_proc.ProcessWatch`` figures.
TITLE = "benchmarks._moto_server"
ROOT = Path(__file__).resolve().parent.parent


class MotoServer:
    """moto's S3 server in a child process: ``endpoint``, ``pid``, ``create_bucket``."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self.endpoint = ""

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def __enter__(self) -> MotoServer:
        self._process = subprocess.Popen(
            [sys.executable, "-m", TITLE],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        port = self._process.stdout.readline().strip()
        if not port.isdigit():
            self.__exit__(None, None, None)
            raise RuntimeError("the moto server did not start (is moto[server] installed?)")
        self.endpoint = f"http://127.0.0.1:{port}"
        return self

    def create_bucket(self, name: str) -> None:
        """An unsigned PUT: moto's server does not check signatures unless told to."""
        request = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        with urllib.request.urlopen(request, timeout=30) as reply:
            reply.read()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is None:
            return
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None


def _serve() -> None:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    server.stop()
    os._exit(0)  # moto's threads need not be joined


if __name__ == "__main__":
    _serve()
