"""A running Naboria for the SDK tests (tests/integration/test_sdks.py): the web role as a
process of its own on the direct path, against the test database, MongoDB and Redis and a
ClickHouse of its own (the HTTP stand-in, so this process can read what the server stored),
behind a proxy that injects the faults clients meet: a 503 with ``Retry-After``, a connection
dropped after the server handled the request (the answer is lost), a connection refused
before it reached the server."""

from __future__ import annotations

import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Headers that belong to one hop, not forwarded.
HOP_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


class FaultProxy:
    """Forwards every request to the server, except that the next planned fault of a path
    (``plan[path]``, consumed in order) is applied instead:

    - ``"503"``: answered 503 ``{"error": ...}`` with ``Retry-After: 1``, not forwarded;
    - ``"drop"``: forwarded (the server handles it) and the connection closed without answer;
    - ``"refuse"``: the connection closed before anything was forwarded.

    ``log`` lists (method, path, status or fault) in arrival order, ``at`` when each came
    (``time.monotonic()``).
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.plan: dict[str, list[str]] = {}
        self.log: list[tuple[str, str, int | str]] = []
        self.at: list[float] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy.handle(self)

            do_POST = do_GET
            do_OPTIONS = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def waited_after(self, path: str, what: int | str) -> float:
        """Seconds between the first ``what`` answer on ``path`` and the next request there."""
        times = [t for (_, p, _), t in zip(self.log, self.at, strict=True) if p == path]
        answers = [w for _, p, w in self.log if p == path]
        index = answers.index(what)
        return times[index + 1] - times[index]

    def faults_left(self) -> dict[str, list[str]]:
        return {path: faults for path, faults in self.plan.items() if faults}

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        path = request.path.split("?", 1)[0]
        length = int(request.headers.get("content-length") or 0)
        body = request.rfile.read(length) if length else b""
        with self.lock:
            faults = self.plan.get(path) or []
            fault = faults.pop(0) if faults else None
        if fault == "refuse":
            self._record(request, path, fault)
            request.close_connection = True
            return
        if fault == "503":
            self._record(request, path, fault)
            self._answer(request, 503, {"retry-after": "1"}, b'{"error": "injected 503"}')
            return
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=60)
        try:
            headers = {
                name: value
                for name, value in request.headers.items()
                if name.lower() not in HOP_HEADERS
            }
            upstream.request(request.command, request.path, body=body or None, headers=headers)
            response = upstream.getresponse()
            content = response.read()
        finally:
            upstream.close()
        if fault == "drop":
            self._record(request, path, f"drop after {response.status}")
            request.close_connection = True
            return
        self._record(request, path, response.status)
        kept = {
            name: value for name, value in response.getheaders() if name.lower() not in HOP_HEADERS
        }
        self._answer(request, response.status, kept, content)

    def _record(self, request: BaseHTTPRequestHandler, path: str, what: int | str) -> None:
        with self.lock:
            self.log.append((request.command, path, what))
            self.at.append(time.monotonic())

    @staticmethod
    def _answer(
        request: BaseHTTPRequestHandler, status: int, headers: dict[str, str], content: bytes
    ) -> None:
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(content)))
        request.send_header("Connection", "close")
        request.end_headers()
        request.wfile.write(content)
        request.close_connection = True
