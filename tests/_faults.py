"""A faulty HTTP proxy on 127.0.0.1 in front of an S3 endpoint, for storage tests.

Every request is counted; one in ``slow_down_every`` is answered ``503 SlowDown``
(S3's throttling reply, with its XML body) without reaching the server, and one in
``drop_every`` is forwarded, answered by the server, and then dropped: the
connection closes without the answer, the worst case for a client (the write
happened, the writer never heard). A retrying client must end with every
operation done exactly once.

>>> with FaultProxy("http://127.0.0.1:5000", slow_down_every=5) as proxy:  # doctest: +SKIP
...     proxy.endpoint                                                    # doctest: +SKIP
'http://127.0.0.1:41234'
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

_SLOW_DOWN_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>"
    b"<RequestId>FAULTPROXY</RequestId></Error>"
)
# Hop-by-hop headers are the proxy's own business; the body is re-framed with a length.
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length"}


@dataclass
class ProxyStats:
    """What went through the proxy: every request seen, and the faults it injected."""

    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    slowed_down: int = 0
    dropped: int = 0


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a connection cut by stop() or by the client: expected here, not news


class FaultProxy:
    """Forward HTTP requests to ``upstream``, injecting 503s and dropped answers.

    ``slow_down_every`` / ``drop_every`` of 0 inject nothing; ``stop()`` closes the
    listening socket, so later requests are refused.
    """

    def __init__(self, upstream: str, *, slow_down_every: int = 0, drop_every: int = 0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"upstream must be http://host:port, got {upstream!r}")
        self.upstream = (parts.hostname, parts.port)
        self.slow_down_every = slow_down_every
        self.drop_every = drop_every
        self.stats = ProxyStats()
        self._lock = threading.Lock()  # handler threads share the counter and the stats
        self._connections: set[socket.socket] = set()
        self._server = _QuietServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut the kept-alive connections: every request is refused."""
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _fault(self, method: str, path: str) -> str | None:
        with self._lock:
            self.stats.requests.append((method, path))
            n = len(self.stats.requests)
            if self.slow_down_every and n % self.slow_down_every == 0:
                self.stats.slowed_down += 1
                return "slow_down"
            if self.drop_every and n % self.drop_every == 0:
                self.stats.dropped += 1
                return "drop"
        return None


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as S3 clients expect

        def setup(self) -> None:
            super().setup()
            with proxy._lock:
                proxy._connections.add(self.request)

        def finish(self) -> None:
            with proxy._lock:
                proxy._connections.discard(self.request)
            super().finish()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: pytest shows failures, not every request

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    chunk = self.rfile.read(size + 2)[:size]  # each chunk ends with CRLF
                    if not size:
                        return b"".join(chunks)
                    chunks.append(chunk)
            return self.rfile.read(int(self.headers.get("Content-Length", 0)))

        def _forward(self) -> None:
            body = self._body()
            fault = proxy._fault(self.command, self.path)
            if fault == "slow_down":
                self.send_response(503, "Slow Down")
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(_SLOW_DOWN_BODY)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(_SLOW_DOWN_BODY)
                return
            upstream = http.client.HTTPConnection(*proxy.upstream, timeout=30)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
            finally:
                upstream.close()
            if fault == "drop":
                self.close_connection = True  # the server acted; its answer is lost
                return
            self.send_response(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() not in _HOP_HEADERS:
                    self.send_header(key, value)
            if self.command != "HEAD" and response.status not in (204, 304):
                self.send_header("Content-Length", str(len(data)))
            elif response.getheader("Content-Length") is not None:
                self.send_header("Content-Length", response.getheader("Content-Length", "0"))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

    return Handler
