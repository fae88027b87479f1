"""An in-process client for the lean endpoints, which live outside Django's URLconf: by
default the tracking endpoints, the ad server's request/response endpoints (/ad-event,
/ads/...) and the recommendations' (/recs/...), as naboria.asgi mounts them; or another lean
application.

Calls the application with a real ASGI scope and answers with the parts of Django's test
response the tests use (status_code, json(), content, headers by name), taking Django-style
keyword headers (HTTP_USER_AGENT=..., REMOTE_ADDR=...).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from asgiref.sync import async_to_sync

from ads.endpoints import ENDPOINTS as AD_ENDPOINTS
from ads.signing import Delivery, sign_delivery
from ingest.asgi import lean_application
from ingest.endpoints import ENDPOINTS as TRACKING_ENDPOINTS
from recs.endpoints import ENDPOINTS as RECS_ENDPOINTS

lean_endpoints = lean_application({**TRACKING_ENDPOINTS, **AD_ENDPOINTS, **RECS_ENDPOINTS})


class TrackingResponse:
    def __init__(self, status: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code = status
        self.headers = headers
        self.content = content

    def __getitem__(self, name: str) -> str:
        return self.headers[name.lower()]

    def json(self) -> Any:
        return json.loads(self.content)


class TrackingClient:
    def __init__(self, application: Any = lean_endpoints, **default_meta: str) -> None:
        """``default_meta``: headers every request sends unless it names them itself (a
        browser's User-Agent, say: a request without one is a bot's)."""
        self.application = application
        self.default_meta = default_meta

    def request(
        self, method: str, path: str, *, body: bytes = b"", query: str = "", **meta: str
    ) -> TrackingResponse:
        meta = {**self.default_meta, **meta}
        if "?" in path:
            path, query = path.split("?", 1)
        headers = [
            (name[5:].replace("_", "-").lower().encode(), value.encode())
            for name, value in meta.items()
            if name.startswith("HTTP_")
        ]
        if "CONTENT_TYPE" in meta:
            headers.append((b"content-type", meta["CONTENT_TYPE"].encode()))
        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "query_string": query.encode(),
            "headers": headers,
            "client": (meta.get("REMOTE_ADDR", "127.0.0.1"), 50000),
        }
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        async_to_sync(self.application)(scope, receive, send)
        start, content = sent[0], b"".join(message.get("body", b"") for message in sent[1:])
        response_headers = {name.decode(): value.decode() for name, value in start["headers"]}
        return TrackingResponse(start["status"], response_headers, content)

    def post(
        self, path: str, data: Any = b"", content_type: str = "application/json", **meta: str
    ) -> TrackingResponse:
        body = (
            data
            if isinstance(data, bytes)
            else (data if isinstance(data, str) else json.dumps(data)).encode()
        )
        return self.request("POST", path, body=body, CONTENT_TYPE=content_type, **meta)

    def get(self, path: str, params: dict[str, str] | None = None, **meta: str) -> TrackingResponse:
        return self.request("GET", path, query=urlencode(params or {}), **meta)

    def options(self, path: str, **meta: str) -> TrackingResponse:
        return self.request("OPTIONS", path, **meta)


# The campaign of ad events made up by tests without a campaign in the database: an id no test
# creates (sequences start at 1), so the delivery counters these events leave in Redis never
# count towards a real campaign of a later test.
UNKNOWN_CAMPAIGN = 900_007


def delivered_ad_event(
    *,
    site: str,
    impression: str,
    kind: str = "impression",
    campaign: int = 1,
    ad: int = 1,
    placement: int = 0,
    creative: str = "image",
    **fields: Any,
) -> dict[str, Any]:
    """An /ad-event body for an ad delivered as stated. Test stand-in for a delivery: the
    impression token is signed here with the server's key, as ads.serving signs the ones it
    delivers; tests of delivery itself take the token from /ads/listing or the stream."""
    token = sign_delivery(
        Delivery(
            impression=impression,
            site=site,
            campaign=campaign,
            ad=ad,
            placement=placement,
            creative=creative,
        )
    )
    return {"type": kind, "impression_token": token, **fields}
