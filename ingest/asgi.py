"""ASGI application of the tracking endpoints (and, built the same way, of the ad server's
request/response endpoints), mounted ahead of Django by naboria.asgi.

It reads the request (refusing headers and query strings that are not UTF-8, and bodies over
the protocol's limit before reading the rest), hands a ``TrackingRequest`` to the endpoints,
writes the answer and counts it in the same Prometheus metrics as Django requests. No Django
middleware, sessions or URL resolving: that is what makes the hot path fast.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl

from events.schemas import MAX_BODY_BYTES
from ingest.endpoints import ENDPOINTS
from ingest.http import TrackingRequest, TrackingResponse, dispatch, error_response
from naboria.metrics import LEAN_REQUESTS

TRACKING_PATHS = frozenset(ENDPOINTS)


class _Unreadable(Exception):
    """A request line or header the endpoints cannot read: answered 400 with this message."""


def _headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The headers by lower-case name. Values must be UTF-8 (ASCII, or what apps put in a
    User-Agent): read as Latin-1 they would reach the tables as mojibake."""
    try:
        return {name.decode("latin-1").lower(): value.decode() for name, value in raw}
    except UnicodeDecodeError:
        name = next(name for name, value in raw if not _is_utf8(value))
        raise _Unreadable(f"header {name.decode('latin-1')} is not valid UTF-8") from None


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode()
    except UnicodeDecodeError:
        return False
    return True


def _query(raw: bytes) -> dict[str, str]:
    """The query parameters, percent-decoded. What they decode to must be UTF-8: parse_qsl
    would replace anything else with U+FFFD and store that."""
    if not raw:  # POST /collect has none
        return {}
    try:
        return {
            key.encode("latin-1").decode(): value.encode("latin-1").decode()
            for key, value in parse_qsl(raw.decode("latin-1"), encoding="latin-1")
        }
    except UnicodeDecodeError:
        raise _Unreadable("query string is not valid UTF-8") from None


async def _read_body(receive: Any, declared: str) -> bytes | None:
    """The body, or None as soon as it exceeds the limit: declared, or while it streams in
    (chunked, or longer than declared), without reading the rest."""
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    message = await receive()
    body: bytes = message.get("body", b"")
    if len(body) > MAX_BODY_BYTES:
        return None
    if not message.get("more_body"):
        return body  # the whole body in one message, as a tracker's small batch arrives
    chunks = [body]
    size = len(body)
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
        try:
            headers = _headers(scope["headers"])
            query = _query(scope.get("query_string", b""))
        except _Unreadable as unreadable:
            body = None
            response = error_response(400, str(unreadable))
        else:
            body = await _read_body(receive, headers.get("content-length", ""))
            if body is None:
                response = error_response(413, f"body larger than {MAX_BODY_BYTES} bytes")
            else:
                client = scope.get("client") or ("", 0)
                request = TrackingRequest(
                    method=scope["method"],
                    path=scope["path"],
                    query=query,
                    headers=headers,
                    body=body,
                    remote_addr=client[0],
                )
                response = await dispatch(request, endpoints)
        if body is None:
            # Answered before the body was read: the server must not read the rest (uvicorn
            # would, to reuse the connection), so it closes the connection instead.
            response.headers["connection"] = "close"
        await _send(send, response)
        LEAN_REQUESTS.record(
            route=scope["path"].lstrip("/"),
            method=scope["method"],
            status=response.status,
            seconds=time.perf_counter() - started,
        )

    return application


tracking_application = lean_application(ENDPOINTS)


async def _send(send: Any, response: TrackingResponse) -> None:
    headers = [(name.encode(), value.encode()) for name, value in response.headers.items()]
    if response.content_type:
        headers.append((b"content-type", response.content_type.encode()))
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
