"""ASGI application of the tracking endpoints (and, built the same way, of the ad server's
request/response endpoints), mounted ahead of Django by naboria.asgi.

It reads the request (refusing bodies over the protocol's limit while reading), hands a
``TrackingRequest`` to ingest.endpoints, writes the answer and counts it in the same
Prometheus metrics as Django requests. No Django middleware, sessions or URL resolving: that
is what makes the hot path fast.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl

from events.schemas import MAX_BODY_BYTES
from ingest.endpoints import ENDPOINTS
from ingest.http import TrackingRequest, TrackingResponse, dispatch, error_response
from naboria.metrics import HTTP_LATENCY, HTTP_REQUESTS

TRACKING_PATHS = frozenset(ENDPOINTS)


async def _read_body(receive: Any, declared: str) -> bytes | None:
    """The body, or None if it exceeds the limit (declared or actual)."""
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def lean_application(endpoints: dict[str, Any]) -> Any:
    """An ASGI application answering ``endpoints`` (path -> (handler, methods)) this way."""

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = time.perf_counter()
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope["headers"]
        }
        body = await _read_body(receive, headers.get("content-length", ""))
        if body is None:
            response = error_response(413, f"body larger than {MAX_BODY_BYTES} bytes")
        else:
            client = scope.get("client") or ("", 0)
            request = TrackingRequest(
                method=scope["method"],
                path=scope["path"],
                query=dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))),
                headers=headers,
                body=body,
                remote_addr=client[0],
            )
            response = await dispatch(request, endpoints)
        await _send(send, response)
        route = scope["path"].lstrip("/")
        HTTP_REQUESTS.labels(route, scope["method"], str(response.status)).inc()
        HTTP_LATENCY.labels(route).observe(time.perf_counter() - started)

    return application


tracking_application = lean_application(ENDPOINTS)


async def _send(send: Any, response: TrackingResponse) -> None:
    headers = [(name.encode(), value.encode()) for name, value in response.headers.items()]
    if response.content_type:
        headers.append((b"content-type", response.content_type.encode()))
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
