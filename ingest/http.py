"""The lean HTTP layer of the tracking endpoints (ingest.endpoints) and of the ad server's
request/response endpoints (ads.endpoints): request and response types, refusals, JSON
answers, body decoding, database calls from the event loop, and the dispatcher that answers a
table of endpoints (preflight, method check, CORS).

Both tables are served by ingest.asgi.lean_application ahead of Django (naboria.asgi mounts
them): no middleware, sessions or URL resolving, which is what makes the hot path fast. Every
failure is a 4xx or 503 with a JSON ``error`` message (docs/tracking-protocol.md).

This module knows nothing of sites, visitors or events: ingest.selectors and ingest.services
build on it, and so does the ad server.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

import msgspec
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections
from django.http.request import split_domain_port, validate_host

from events.schemas import MAX_BODY_BYTES

TRANSPARENT_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
RETRY_AFTER_SECONDS = "5"
ACCEPTED_CONTENT_TYPES = {"application/json", "text/plain", ""}
Result = TypeVar("Result")
Payload = TypeVar("Payload", covariant=True)
_json = msgspec.json.Encoder()


# Requests, facts and responses are msgspec structs: made several times per request, and a
# frozen dataclass costs ten times as much to make (its __init__ sets each field through
# object.__setattr__).
class TrackingRequest(msgspec.Struct, frozen=True):
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    remote_addr: str

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


class TrackingResponse(msgspec.Struct):
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = {}  # a new dict for each response


class Refusal(Exception):
    """A request the protocol refuses: answered with ``status`` and a message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


Endpoint = Callable[[TrackingRequest], Coroutine[Any, Any, TrackingResponse]]
# path -> (handler, methods it answers)
EndpointTable = dict[str, tuple[Endpoint, frozenset[str]]]


def json_response(status: int, payload: dict[str, Any]) -> TrackingResponse:
    response = TrackingResponse(status, _json.encode(payload))
    if status == 503:
        response.headers["retry-after"] = RETRY_AFTER_SECONDS
    return response


def error_response(status: int, message: str, **extra: Any) -> TrackingResponse:
    return json_response(status, {"error": message, **extra})


# What Django's HttpRequest.get_host() allows when DEBUG is on and ALLOWED_HOSTS is empty.
DEBUG_ALLOWED_HOSTS = [".localhost", "127.0.0.1", "[::1]"]


def request_host(headers: dict[str, str], scheme: str = "http") -> str:
    """scheme://host the client used, for absolute URLs in answers (trusts X-Forwarded-Proto
    like Django does with SECURE_PROXY_SSL).

    The Host header is checked against ALLOWED_HOSTS by Django's own rules, as get_host()
    would: a forged one would otherwise put its domain in the tracking and click URLs the
    answer hands to apps and players (a 400 refuses it). A request without one, which HTTP/1.0
    allows, still gets URLs on localhost: the fallback is ours, nothing a client chose."""
    if headers.get("x-forwarded-proto") == "https":
        scheme = "https"
    host = headers.get("host")
    if host is None:
        return f"{scheme}://localhost"
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = DEBUG_ALLOWED_HOSTS
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, allowed):
        raise Refusal(400, "the Host header names a host not served here (ALLOWED_HOSTS)")
    return f"{scheme}://{host}"


def _body(request: TrackingRequest) -> bytes:
    if len(request.body) > MAX_BODY_BYTES:
        raise Refusal(413, f"body larger than {MAX_BODY_BYTES} bytes")
    if not request.body:
        raise Refusal(400, "empty body: send a JSON object")
    if request.content_type not in ACCEPTED_CONTENT_TYPES:
        raise Refusal(415, "send JSON as application/json or text/plain (sendBeacon)")
    return request.body


class Decoder(Protocol[Payload]):
    """What decodes a body: msgspec's JSON decoder, or events.schemas' checking one."""

    def decode(self, data: bytes) -> Payload: ...


def decoded_body(request: TrackingRequest, *, decoder: Decoder[Payload], what: str) -> Payload:
    """The JSON body decoded by ``decoder``; 413, 400 or 415 when it cannot be."""
    try:
        return decoder.decode(_body(request))
    except msgspec.DecodeError as error:
        raise Refusal(400, f"malformed {what}: {error}") from None


def in_database(function: Callable[..., Result]) -> Callable[..., Awaitable[Result]]:
    """``function`` run in a worker thread as Django's request cycle would run it: a connection
    that broke (the database restarted) or outlived CONN_MAX_AGE is replaced first, and a
    database that does not answer is a 503, not a 500."""

    def call(*args: Any, **kwargs: Any) -> Result:
        _replace_broken_connections()
        try:
            return function(*args, **kwargs)
        except DatabaseError as error:
            _replace_broken_connections()
            raise Refusal(503, "database unavailable, retry later") from error

    return sync_to_async(call)


def _replace_broken_connections() -> None:
    # Inside a transaction (a caller's, or a test's) the connection must stay as it is.
    if not any(db.in_atomic_block for db in connections.all(initialized_only=True)):
        close_old_connections()


async def dispatch(request: TrackingRequest, endpoints: EndpointTable) -> TrackingResponse:
    """Answer a request to one of ``endpoints`` (the tracking endpoints, or the ad server's):
    preflight, method check, the endpoint, CORS headers."""
    handler, methods = endpoints[request.path]
    if request.method == "OPTIONS":
        response = TrackingResponse(204, content_type="")
        response.headers.update(
            {
                "access-control-allow-methods": ", ".join(sorted(methods)),
                "access-control-allow-headers": "Content-Type",
                "access-control-max-age": "86400",
            }
        )
    elif request.method not in methods:
        response = error_response(405, f"use {' or '.join(sorted(methods))}")
    else:
        try:
            response = await handler(request)
        except Refusal as refusal:
            response = error_response(refusal.status, refusal.message)
    origin = request.headers.get("origin")
    if origin:
        # Allowed origins get their answer; refused ones can at least read why.
        response.headers["access-control-allow-origin"] = origin
        response.headers["vary"] = "Origin"
    return response
