"""The tracking endpoints: /init, /collect, /ad-event and the /p.gif pixel.

Async views so a request waiting for a durable ad write does not hold a thread, and so that a
burst of collects is not serialised behind Django's single sync thread. The database is only
touched on a site-cache miss or the first request of a day (the salt). Every failure is a 4xx
or 503 with a JSON ``error`` message; see docs/tracking-protocol.md.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit

import msgspec
from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from ingest import identity
from ingest.schemas import (
    MAX_BODY_BYTES,
    Consent,
    Envelope,
    Identifier,
    ad_event_decoder,
    envelope_decoder,
)
from ingest.selectors import SiteConfig, cached_site_config, load_site_config
from ingest.services import (
    InvalidToken,
    RequestFacts,
    ad_row_from_event,
    page_rows_from_batch,
    visitor_identity,
)
from ingest.sinks import SinkFull, SinkUnavailable, get_sink

TRANSPARENT_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
RETRY_AFTER_SECONDS = "5"
_identifier_decoder = msgspec.json.Decoder(Identifier)


class Refusal(Exception):
    """A request the protocol refuses: answered with ``status`` and a message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str, **extra: Any) -> JsonResponse:
    response = JsonResponse({"error": message, **extra}, status=status)
    if status == 503:
        response["Retry-After"] = RETRY_AFTER_SECONDS
    return response


async def _site(public_id: str) -> SiteConfig:
    found, config = cached_site_config(public_id)
    if not found:
        config = await sync_to_async(load_site_config)(public_id)
    if config is None:
        raise Refusal(404, f"unknown site {public_id!r}")
    return config


def _origin_host(request: HttpRequest) -> str | None:
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        return None
    return urlsplit(origin).hostname or ""


def _check_origin(request: HttpRequest, site: SiteConfig) -> None:
    # Apps and servers send no Origin; browsers always do on cross-site requests.
    host = _origin_host(request)
    if host is not None and not site.allows_origin_host(host):
        raise Refusal(403, f"origin {host!r} is not an allowed domain of this site")


def _with_cors(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    origin = request.headers.get("Origin")
    if origin:
        # Only reached for allowed origins (or to report an error the page may read).
        response["Access-Control-Allow-Origin"] = origin
        response["Vary"] = "Origin"
    return response


def _read_body(request: HttpRequest) -> bytes:
    declared = request.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise Refusal(413, f"body larger than {MAX_BODY_BYTES} bytes")
    body = request.body
    if len(body) > MAX_BODY_BYTES:
        raise Refusal(413, f"body larger than {MAX_BODY_BYTES} bytes")
    if not body:
        raise Refusal(400, "empty body: send a JSON object")
    content_type = request.content_type or ""
    if content_type not in {"application/json", "text/plain", ""}:
        raise Refusal(415, "send JSON as application/json or text/plain (sendBeacon)")
    return body


def _facts(request: HttpRequest) -> RequestFacts:
    return RequestFacts.from_headers(
        headers=request.headers,
        remote_addr=request.META.get("REMOTE_ADDR", ""),
        trusted_proxies=settings.INGEST_TRUSTED_PROXIES,
    )


async def _identify(
    site: SiteConfig, bid: str | None, token: str | None, consent: Consent, facts: RequestFacts
) -> str:
    try:
        # The cookieless hash reads the daily salt: a database read once a day per process.
        return await sync_to_async(visitor_identity)(
            site=site, bid=bid, token=token, consent=consent, facts=facts
        )
    except InvalidToken:
        raise Refusal(403, "invalid or expired token: call /init for a new one") from None


Handler = Callable[[HttpRequest], Coroutine[Any, Any, HttpResponse]]


def tracking_endpoint(methods: set[str]) -> Callable[[Handler], Handler]:
    """CSRF-exempt, CORS-aware, answers preflights, turns Refusals into their responses."""

    def decorate(handler: Handler) -> Handler:
        async def view(request: HttpRequest) -> HttpResponse:
            if request.method == "OPTIONS":
                response = HttpResponse(status=204)
                response["Access-Control-Allow-Methods"] = ", ".join(sorted(methods))
                response["Access-Control-Allow-Headers"] = "Content-Type"
                response["Access-Control-Max-Age"] = "86400"
                return _with_cors(request, response)
            if request.method not in methods:
                return _with_cors(request, _error(405, f"use {' or '.join(sorted(methods))}"))
            try:
                response = await handler(request)
            except Refusal as refusal:
                response = _error(refusal.status, refusal.message)
            return _with_cors(request, response)

        view.__name__ = handler.__name__
        return csrf_exempt(view)

    return decorate


@tracking_endpoint({"GET", "POST"})
async def init(request: HttpRequest) -> HttpResponse:
    site_id = request.GET.get("site", "")
    if not site_id:
        raise Refusal(400, "missing site parameter")
    site = await _site(site_id)
    _check_origin(request, site)
    bid = request.GET.get("bid") or identity.issue_browser_id()
    try:
        _identifier_decoder.decode(msgspec.json.encode(bid))
    except msgspec.ValidationError:
        raise Refusal(400, "bid must be 1-64 characters of letters, digits and . _ : -") from None
    token = identity.issue_token(secret=site.secrets[0], bid=bid, site_id=site.public_id)
    response = JsonResponse(
        {"bid": bid, "token": token, "window_seconds": identity.TOKEN_WINDOW_SECONDS}
    )
    response["Cache-Control"] = "no-store"
    return response


async def _accept_page_batch(request: HttpRequest, envelope: Envelope) -> HttpResponse:
    site = await _site(envelope.site)
    _check_origin(request, site)
    if not site.analytics_enabled:
        raise Refusal(403, "analytics is disabled for this site")
    facts = _facts(request)
    if site.respect_do_not_track and facts.do_not_track:
        return JsonResponse({"accepted": 0, "ignored": "do-not-track"}, status=202)
    visitor_id = await _identify(site, envelope.bid, envelope.token, envelope.consent, facts)
    rows, rejections = page_rows_from_batch(
        envelope=envelope, site=site, visitor_id=visitor_id, facts=facts
    )
    rejected = [{"index": item.index, "error": item.error} for item in rejections]
    if not rows:
        return _error(400, "no valid event in the batch", rejected=rejected)
    try:
        get_sink().submit_page_rows(rows, key=site.public_id)
    except SinkFull as full:
        return _error(503, f"temporarily unable to accept events ({full})")
    return JsonResponse({"accepted": len(rows), "rejected": rejected}, status=202)


@tracking_endpoint({"POST"})
async def collect(request: HttpRequest) -> HttpResponse:
    try:
        envelope = envelope_decoder.decode(_read_body(request))
    except msgspec.DecodeError as error:
        raise Refusal(400, f"malformed batch: {error}") from None
    return await _accept_page_batch(request, envelope)


@tracking_endpoint({"GET"})
async def pixel(request: HttpRequest) -> HttpResponse:
    """A pageview for pages without JavaScript: <img src="/p.gif?site=ID&url=URL&ref=REF">."""
    page = request.GET.get("url") or request.headers.get("Referer", "")
    event = {"type": "pageview", "url": page, "referrer": request.GET.get("ref", "")}
    try:
        envelope = envelope_decoder.decode(
            msgspec.json.encode({"site": request.GET.get("site", ""), "events": [event]})
        )
    except msgspec.DecodeError as error:
        raise Refusal(400, f"malformed pixel request: {error}") from None
    response = await _accept_page_batch(request, envelope)
    if response.status_code != 202:
        return response
    gif = HttpResponse(TRANSPARENT_GIF, content_type="image/gif")
    gif["Cache-Control"] = "no-store"
    return gif


@tracking_endpoint({"POST"})
async def ad_event(request: HttpRequest) -> HttpResponse:
    try:
        event = ad_event_decoder.decode(_read_body(request))
    except msgspec.DecodeError as error:
        raise Refusal(400, f"malformed ad event: {error}") from None
    site = await _site(event.site)
    _check_origin(request, site)
    facts = _facts(request)
    visitor_id = await _identify(site, event.bid, event.token, event.consent, facts)
    event_id, row = ad_row_from_event(event=event, site=site, visitor_id=visitor_id, facts=facts)
    try:
        await asyncio.wait_for(
            asyncio.wrap_future(get_sink().write_ad_row(row, key=site.public_id)),
            timeout=settings.INGEST_AD_EVENT_TIMEOUT_SECONDS,
        )
    except (SinkUnavailable, TimeoutError) as error:
        return _error(503, f"event not stored, retry later ({error or 'timed out'})")
    return JsonResponse({"stored": True, "event_id": event_id})
