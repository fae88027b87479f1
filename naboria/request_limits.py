"""Request limits every server role applies before the application reads a request whole.

- Bodies: ``BodyLimitMiddleware`` wraps the Django/Channels application (naboria.asgi). Django's
  ASGIHandler spools the whole body to a temporary file before DATA_UPLOAD_MAX_MEMORY_SIZE is
  even looked at, so without it a client could make any process read gigabytes. The tracking
  and ad endpoints have the protocol's own, smaller limit (ingest.asgi).
- Heads (request line and header fields): ``MAX_HEAD_BYTES`` and ``MAX_HEADER_FIELDS``, which
  the server protocols enforce while the head arrives (naboria.web for daphne,
  naboria.ingest_http for uvicorn), answering ``refusal(431, ...)``.

Infrastructure: nothing here imports the apps.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

# Twisted's and h11's default, and Node's: far above what browsers and apps send (a few
# hundred bytes, or a few KiB with cookies).
MAX_HEAD_BYTES = 16 * 1024
MAX_HEADER_FIELDS = 100


def refusal(status: int, message: str) -> bytes:
    """A whole HTTP/1.1 response with a JSON ``error``, closing the connection: what a server
    protocol writes itself when it refuses a request the application never sees."""
    body = json.dumps({"error": message}).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


def head_refusal() -> bytes:
    return refusal(
        431,
        f"request line and headers larger than {MAX_HEAD_BYTES} bytes"
        f" or more than {MAX_HEADER_FIELDS} header fields",
    )


class BodyLimitMiddleware:
    """ASGI middleware answering 413 to a request body over ``max_bytes``: at once when its
    Content-Length says so, otherwise (chunked) as soon as the chunks received exceed it.

    The application then gets ``http.disconnect`` instead of more body (Django drops such a
    request), and the connection is closed rather than the rest read."""

    def __init__(self, application: Any, max_bytes: int) -> None:
        self.application = application
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.application(scope, receive, send)
            return
        declared = next(
            (value for name, value in scope["headers"] if name.lower() == b"content-length"), None
        )
        if declared is not None and declared.isdigit():
            if int(declared) > self.max_bytes:
                await self._refuse(send)
            else:
                # The server delivers no more than the declared length.
                await self.application(scope, receive, send)
            return
        await self._stream(scope, receive, send)

    async def _stream(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        received = 0
        refused = responding = False

        async def counted_receive() -> dict[str, Any]:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message: dict[str, Any] = await receive()
            received += len(message.get("body", b""))
            if received <= self.max_bytes:
                return message
            refused = True
            if not responding:
                await self._refuse(send)
            return {"type": "http.disconnect"}

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal responding
            if refused:
                return  # the 413 is the answer
            responding = True
            await send(message)

        await self.application(scope, counted_receive, tracked_send)

    async def _refuse(self, send: Any) -> None:
        body = json.dumps({"error": f"body larger than {self.max_bytes} bytes"}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
