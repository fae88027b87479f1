"""BodyLimitMiddleware: a body over the limit is answered 413 before the application reads it
(declared) or as soon as it grows past the limit (chunked); anything smaller passes untouched.
The servers' own limits are tested with real processes in tests/integration/test_bad_input.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest

from naboria.request_limits import BodyLimitMiddleware, refusal

LIMIT = 1000


class BodyEcho:
    """An application that reads the whole body, then answers its length."""

    def __init__(self) -> None:
        self.disconnected = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                return
            size += len(message["body"])
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})


def run(
    application: Any, chunks: Sequence[bytes], headers: Sequence[tuple[bytes, bytes]] = ()
) -> tuple[list[dict[str, Any]], int]:
    """The messages sent, and how many body messages were read."""
    scope = {"type": "http", "method": "POST", "path": "/api/", "headers": list(headers)}
    pending = list(chunks)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        body = pending.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(BodyLimitMiddleware(application, LIMIT)(scope, receive, send))
    return sent, len(chunks) - len(pending)


def refused(sent: list[dict[str, Any]]) -> None:
    start, body = sent
    assert start["status"] == 413
    assert (b"connection", b"close") in start["headers"]
    assert json.loads(body["body"]) == {"error": f"body larger than {LIMIT} bytes"}


def test_a_declared_length_over_the_limit_is_refused_before_reading():
    echo = BodyEcho()
    sent, reads = run(echo, [b"x" * 600] * 3, [(b"Content-Length", b"1800")])
    refused(sent)
    assert reads == 0


def test_a_chunked_body_is_refused_once_it_grows_past_the_limit():
    echo = BodyEcho()
    sent, reads = run(echo, [b"x" * 300] * 100)
    refused(sent)
    assert reads == 4  # 1200 bytes: over the limit, and nothing more read
    assert echo.disconnected


@pytest.mark.parametrize("headers", [[(b"content-length", b"1000")], []])
def test_bodies_up_to_the_limit_reach_the_application(headers):
    sent, reads = run(BodyEcho(), [b"x" * 500] * 2, headers)
    assert [message.get("status") for message in sent] == [200, None]
    assert sent[1]["body"] == b"1000"
    assert reads == 2


def test_other_scopes_pass_through():
    seen = []

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    asyncio.run(BodyLimitMiddleware(application, LIMIT)({"type": "lifespan"}, None, None))
    assert seen == ["lifespan"]


def test_a_server_refusal_is_a_whole_json_response():
    head, _, body = refusal(431, "too large").partition(b"\r\n\r\n")
    assert head.splitlines()[0] == b"HTTP/1.1 431 Request Header Fields Too Large"
    assert b"connection: close" in head
    assert f"content-length: {len(body)}".encode() in head
    assert json.loads(body) == {"error": "too large"}
