"""The tracking endpoints: /init, /collect, /ad-event, the /p.gif pixel and /consent.

They are the hot path of the product, so they do not go through Django's request cycle (its
middleware stack costs an order of magnitude in throughput, see bench/RESULTS.md): ingest.asgi
turns the ASGI request into a ``TrackingRequest`` and routes it here; the logic itself calls
the same services, schemas and selectors as the rest of Naboria. The database is only touched
on a site-cache miss or on the first cookieless visitor of a day (the salt). Every failure is
a 4xx or 503 with a JSON ``error`` message (docs/tracking-protocol.md).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import msgspec
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections

from ads.counters import count_impression, get_counters
from consent.selectors import cached_recorded_purposes, recorded_purposes
from consent.services import consent_record_create
from events.schemas import (
    MAX_BODY_BYTES,
    AdEventPayload,
    Consent,
    Envelope,
    Identifier,
    Impression,
    ad_event_decoder,
    consent_decision_decoder,
    envelope_decoder,
)
from ingest import identity
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
ACCEPTED_CONTENT_TYPES = {"application/json", "text/plain", ""}
Result = TypeVar("Result")
Payload = TypeVar("Payload")
_identifier_decoder = msgspec.json.Decoder(Identifier)
_json = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class TrackingRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    remote_addr: str

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


@dataclass(slots=True)
class TrackingResponse:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class Refusal(Exception):
    """A request the protocol refuses: answered with ``status`` and a message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_response(status: int, payload: dict[str, Any]) -> TrackingResponse:
    response = TrackingResponse(status, _json.encode(payload))
    if status == 503:
        response.headers["retry-after"] = RETRY_AFTER_SECONDS
    return response


def error_response(status: int, message: str, **extra: Any) -> TrackingResponse:
    return json_response(status, {"error": message, **extra})


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


async def site_config(public_id: str) -> SiteConfig:
    """The site's settings (cached in process); 404 when there is no such site."""
    found, config = cached_site_config(public_id)
    if not found:
        config = await in_database(load_site_config)(public_id)
    if config is None:
        raise Refusal(404, f"unknown site {public_id!r}")
    return config


def check_origin(headers: dict[str, str], site: SiteConfig) -> None:
    """403 unless the request's Origin (if any) is one of the site's allowed domains."""
    # Apps and servers send no Origin; browsers always do on cross-site requests.
    origin = headers.get("origin")
    if not origin or origin == "null":
        return
    host = urlsplit(origin).hostname or ""
    if not site.allows_origin_host(host):
        raise Refusal(403, f"origin {host!r} is not an allowed domain of this site")


async def _site(request: TrackingRequest, public_id: str) -> SiteConfig:
    """The site, if it exists and the request's origin is one of its allowed domains."""
    config = await site_config(public_id)
    check_origin(request.headers, config)
    return config


def request_host(headers: dict[str, str], scheme: str = "http") -> str:
    """scheme://host the client used, for absolute URLs in answers (trusts X-Forwarded-Proto
    like Django does with SECURE_PROXY_SSL)."""
    if headers.get("x-forwarded-proto") == "https":
        scheme = "https"
    return f"{scheme}://{headers.get('host', 'localhost')}"


def _body(request: TrackingRequest) -> bytes:
    if len(request.body) > MAX_BODY_BYTES:
        raise Refusal(413, f"body larger than {MAX_BODY_BYTES} bytes")
    if not request.body:
        raise Refusal(400, "empty body: send a JSON object")
    if request.content_type not in ACCEPTED_CONTENT_TYPES:
        raise Refusal(415, "send JSON as application/json or text/plain (sendBeacon)")
    return request.body


def _decoded(
    request: TrackingRequest, decoder: msgspec.json.Decoder[Payload], what: str
) -> Payload:
    try:
        return decoder.decode(_body(request))
    except msgspec.DecodeError as error:
        raise Refusal(400, f"malformed {what}: {error}") from None


def _facts(request: TrackingRequest) -> RequestFacts:
    return RequestFacts.from_headers(
        headers=request.headers,
        remote_addr=request.remote_addr,
        trusted_proxies=settings.INGEST_TRUSTED_PROXIES,
    )


NO_CONSENT = Consent()


async def verified_consent(site: SiteConfig, bid: str | None, claimed: Consent) -> Consent:
    """The consent the server accepts: on sites that use Naboria's banner a claim counts only
    as far as the browser id's latest recorded decision granted it, whatever the page sends.
    (A site with a CMP of its own is trusted with what its page claims.)"""
    if not site.consent_banner_enabled or claimed == NO_CONSENT:
        return claimed
    if bid is None:
        return NO_CONSENT
    found, granted = cached_recorded_purposes(site_public_id=site.public_id, visitor_id=bid)
    if not found:
        granted = await in_database(recorded_purposes)(
            site_public_id=site.public_id, visitor_id=bid
        )
    return Consent(
        analytics=claimed.analytics and "analytics" in granted,
        ads=claimed.ads and "ads" in granted,
    )


async def identify(
    site: SiteConfig, bid: str | None, token: str | None, consent: Consent, facts: RequestFacts
) -> str:
    if not identity.salt_is_cached(facts.day):
        # The first cookieless visitor of the day reads (or makes) the salt in the database.
        await in_database(identity.salt_for)(facts.day)
    try:
        return visitor_identity(site=site, bid=bid, token=token, consent=consent, facts=facts)
    except InvalidToken:
        raise Refusal(403, "invalid or expired token: call /init for a new one") from None


def _identifier(value: str, name: str) -> str:
    try:
        return _identifier_decoder.decode(_json.encode(value))
    except msgspec.ValidationError:
        message = f"{name} must be 1-64 characters of letters, digits and . _ : -"
        raise Refusal(400, message) from None


async def init(request: TrackingRequest) -> TrackingResponse:
    site = await _site(request, _identifier(request.query.get("site", ""), "site"))
    bid = _identifier(request.query.get("bid") or identity.issue_browser_id(), "bid")
    token = identity.issue_token(secret=site.secrets[0], bid=bid, site_id=site.public_id)
    response = json_response(
        200, {"bid": bid, "token": token, "window_seconds": identity.TOKEN_WINDOW_SECONDS}
    )
    response.headers["cache-control"] = "no-store"
    return response


async def _accept_page_batch(request: TrackingRequest, envelope: Envelope) -> TrackingResponse:
    site = await _site(request, envelope.site)
    if not site.analytics_enabled:
        raise Refusal(403, "analytics is disabled for this site")
    facts = _facts(request)
    if site.respect_do_not_track and facts.do_not_track:
        return json_response(202, {"accepted": 0, "ignored": "do-not-track"})
    envelope.consent = await verified_consent(site, envelope.bid, envelope.consent)
    visitor_id = await identify(site, envelope.bid, envelope.token, envelope.consent, facts)
    rows, rejections = page_rows_from_batch(
        envelope=envelope, site=site, visitor_id=visitor_id, facts=facts
    )
    rejected = [{"index": item.index, "error": item.error} for item in rejections]
    if not rows:
        return error_response(400, "no valid event in the batch", rejected=rejected)
    try:
        get_sink().submit_page_rows(rows, key=site.public_id)
    except SinkFull as full:
        return error_response(503, f"temporarily unable to accept events ({full})")
    return json_response(202, {"accepted": len(rows), "rejected": rejected})


async def collect(request: TrackingRequest) -> TrackingResponse:
    envelope = _decoded(request, envelope_decoder, "batch")
    return await _accept_page_batch(request, envelope)


async def pixel(request: TrackingRequest) -> TrackingResponse:
    """A pageview for pages without JavaScript: <img src="/p.gif?site=ID&url=URL&ref=REF">."""
    page = request.query.get("url") or request.headers.get("referer", "")
    event = {"type": "pageview", "url": page, "referrer": request.query.get("ref", "")}
    try:
        envelope = envelope_decoder.decode(
            _json.encode({"site": request.query.get("site", ""), "events": [event]})
        )
    except msgspec.DecodeError as error:
        raise Refusal(400, f"malformed pixel request: {error}") from None
    response = await _accept_page_batch(request, envelope)
    if response.status != 202:
        return response
    return TrackingResponse(
        200, TRANSPARENT_GIF, content_type="image/gif", headers={"cache-control": "no-store"}
    )


async def ad_event(request: TrackingRequest) -> TrackingResponse:
    event = _decoded(request, ad_event_decoder, "ad event")
    site = await _site(request, event.site)
    if not site.ads_enabled:
        raise Refusal(403, "ads are disabled for this site")
    facts = _facts(request)
    event.consent = await verified_consent(site, event.bid, event.consent)
    visitor_id = await identify(site, event.bid, event.token, event.consent, facts)
    try:
        event_id = await store_ad_event(event=event, site=site, visitor_id=visitor_id, facts=facts)
    except (SinkUnavailable, TimeoutError) as error:
        return error_response(503, f"event not stored, retry later ({error or 'timed out'})")
    return json_response(200, {"stored": True, "event_id": event_id})


async def store_ad_event(
    *, event: AdEventPayload, site: SiteConfig, visitor_id: str, facts: RequestFacts
) -> str:
    """Make the ad event durable (Kafka ack or ClickHouse insert) and count an impression for
    caps and pacing; its event id. Raises SinkUnavailable or TimeoutError when not stored.
    Also used by the ad server's click redirect and tracking URLs (ads.views)."""
    event_id, row = ad_row_from_event(event=event, site=site, visitor_id=visitor_id, facts=facts)
    # A retried event (same impression and type) is answered as stored without a second row,
    # which the raw table would fold only at merge time and the rollups would count twice.
    counters = get_counters()
    if not await counters.claim(event_id):
        return event_id
    try:
        await asyncio.wait_for(
            asyncio.wrap_future(get_sink().write_ad_row(row, key=site.public_id)),
            timeout=settings.INGEST_AD_EVENT_TIMEOUT_SECONDS,
        )
    except BaseException:
        await counters.release(event_id)  # not stored: a retry must be able to store it
        raise
    if isinstance(event, Impression):
        await count_impression(campaign_id=event.campaign, visitor_id=visitor_id)
    return event_id


async def consent(request: TrackingRequest) -> TrackingResponse:
    """Record a banner decision. With analytics granted the answer carries a browser id and a
    token (as /init would), so the tracker needs no second round trip."""
    decision = _decoded(request, consent_decision_decoder, "consent decision")
    site = await _site(request, decision.site)
    unknown = (set(decision.granted) | set(decision.denied)) - site.consent_purposes
    if unknown:
        raise Refusal(400, f"unknown purposes for this site: {', '.join(sorted(unknown))}")
    if set(decision.granted) & set(decision.denied):
        raise Refusal(400, "a purpose cannot be both granted and denied")
    facts = _facts(request)
    answer: dict[str, Any] = {"recorded": True}
    if "analytics" in decision.granted or decision.bid:
        # A browser id the visitor already has is kept, so a withdrawal is recorded against it.
        bid, kind = decision.bid or identity.issue_browser_id(), "browser"
    else:
        bid, kind = await identify(site, None, None, NO_CONSENT, facts), "hashed"
    if "analytics" in decision.granted:
        answer.update(
            bid=bid,
            token=identity.issue_token(secret=site.secrets[0], bid=bid, site_id=site.public_id),
            window_seconds=identity.TOKEN_WINDOW_SECONDS,
        )
    await in_database(consent_record_create)(
        site_public_id=site.public_id,
        visitor_id=bid,
        visitor_id_kind=kind,
        granted=decision.granted,
        denied=decision.denied,
        banner_version=decision.version,
        tc_string=decision.tc,
        language=decision.lang,
        user_agent_family=facts.agent.browser,
        country=facts.country,
    )
    response = json_response(201, answer)
    response.headers["cache-control"] = "no-store"
    return response


Endpoint = Callable[[TrackingRequest], Coroutine[Any, Any, TrackingResponse]]

# path -> (handler, methods it answers)
ENDPOINTS: dict[str, tuple[Endpoint, frozenset[str]]] = {
    "/init": (init, frozenset({"GET", "POST"})),
    "/collect": (collect, frozenset({"POST"})),
    "/ad-event": (ad_event, frozenset({"POST"})),
    "/p.gif": (pixel, frozenset({"GET"})),
    "/consent": (consent, frozenset({"POST"})),
}


async def dispatch(
    request: TrackingRequest, endpoints: dict[str, tuple[Endpoint, frozenset[str]]] = ENDPOINTS
) -> TrackingResponse:
    """Answer a request to one of ``endpoints`` (the tracking endpoints unless another table of
    lean endpoints is given, as the ad server does): preflight, method check, the endpoint,
    CORS headers."""
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
