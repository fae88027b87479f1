"""The recommendation endpoints, served by the lean ASGI layer ahead of Django like the tracking
endpoints (naboria.asgi mounts them; ingest.http does the requests and refusals):

- ``GET /recs/items?site=&url=[&bid=&token=&consent=analytics][&limit=]``: the site's popular
  pages, leaving out the page at ``url`` and, for a visitor whose token verifies and whose
  analytics consent the server accepts, the pages they visited in the last 7 days.
- ``POST /recs/signal``: a visit (``{"site", "type": "visit", "url", "title", "bid", "token",
  "consent"}``), stored only with a valid token and accepted analytics consent. Ad impressions
  and clicks are not taken from here: /ad-event records them once it has stored the event it
  verified (ads.endpoints).

Only for sites with recommendations on (403 otherwise). Every failure is a 4xx or 503 with a
JSON ``error`` message; see docs/recommendations.md.
"""

from __future__ import annotations

import time
from typing import Annotated
from urllib.parse import urlsplit

import msgspec

from events.schemas import Consent, Identifier, JsonDecoder, Url
from ingest.endpoints import identifier_param
from ingest.http import (
    EndpointTable,
    Refusal,
    TrackingRequest,
    TrackingResponse,
    decoded_body,
    json_response,
)
from ingest.identity import token_is_valid
from ingest.selectors import SiteConfig, consent_verified, site_config_for_request
from ingest.services import RequestFacts, request_facts
from naboria.redis_client import RedisError
from recs.selectors import recommended_items
from recs.services import visit_record

DEFAULT_ITEMS = 5
MAX_ITEMS = 20
MAX_TITLE_LENGTH = 200
PURPOSES = frozenset({"analytics", "ads"})


class VisitSignal(msgspec.Struct, forbid_unknown_fields=True):
    """A POST /recs/signal body."""

    site: Identifier
    type: Annotated[str, msgspec.Meta(max_length=32)]
    url: Url
    bid: Identifier
    token: Annotated[str, msgspec.Meta(max_length=128)]
    title: Annotated[str, msgspec.Meta(max_length=1024)] = ""
    consent: Consent = Consent()


signal_decoder = JsonDecoder[VisitSignal](VisitSignal, url_fields=("url",))


async def _site(request: TrackingRequest, public_id: str) -> SiteConfig:
    site = await site_config_for_request(public_id=public_id, headers=request.headers)
    if not site.recommendations_enabled:
        raise Refusal(403, "recommendations are disabled for this site")
    return site


def _page_path(site: SiteConfig, url: str) -> str:
    """The path of a page of the site at ``url``; 400 unless it is an absolute URL on one of
    the site's allowed domains (a signal cannot put another site's pages in its list)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        raise Refusal(400, "url is not a valid URL") from None
    if parts.scheme not in {"http", "https"} or not host:
        raise Refusal(400, "url must be an absolute http(s) URL of the page")
    if not site.allows_origin_host(host, port):
        raise Refusal(400, f"url: {host!r} is not an allowed domain of this site")
    return (parts.path or "/")[:1024]


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_ITEMS
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_ITEMS:
        raise Refusal(400, f"limit must be a whole number from 1 to {MAX_ITEMS}")
    return int(value)


def _claimed_consent(value: str) -> Consent:
    """The purposes a GET request claims, as a comma-separated list (analytics, ads)."""
    purposes = {purpose for purpose in value.split(",") if purpose}
    if purposes - PURPOSES:
        raise Refusal(400, "consent must list purposes among analytics and ads, e.g. analytics")
    return Consent(analytics="analytics" in purposes, ads="ads" in purposes)


async def _not_allowed(
    *, site: SiteConfig, bid: str, claimed: Consent, facts: RequestFacts
) -> str | None:
    """Why the visitor's own signals may be neither kept nor used, or None: they may with
    analytics consent the server accepts and no privacy signal the site honours."""
    if site.respect_do_not_track and facts.do_not_track:
        return "do-not-track"
    consent = await consent_verified(
        site=site,
        bid=bid,
        claimed=claimed,
        country=facts.country,
        privacy_signal=facts.do_not_track,
    )
    return None if consent.analytics else "no analytics consent"


def _token_verifies(*, site: SiteConfig, bid: str, token: str) -> bool:
    return token_is_valid(
        secrets_in_force=list(site.secrets), bid=bid, site_id=site.public_id, token=token
    )


async def items(request: TrackingRequest) -> TrackingResponse:
    """Popular pages for this visitor. A browser id with a token that does not verify, or
    without consent, is not refused: the visitor gets what everybody gets."""
    query = request.query
    site = await _site(request, identifier_param(query.get("site", ""), "site"))
    current = _page_path(site, query.get("url", ""))
    limit = _limit(query.get("limit"))
    claimed = _claimed_consent(query.get("consent", ""))
    bid, token = query.get("bid"), query.get("token", "")
    personal = False
    if bid is not None:
        bid = identifier_param(bid, "bid")
        facts = request_facts(request=request)
        refused = await _not_allowed(site=site, bid=bid, claimed=claimed, facts=facts)
        personal = refused is None and _token_verifies(site=site, bid=bid, token=token)
    try:
        found = await recommended_items(
            site_id=site.public_id,
            current_path=current,
            visitor=bid if personal else None,
            limit=limit,
        )
    except RedisError:
        raise Refusal(503, "recommendations unavailable, retry later") from None
    response = json_response(200, {"items": found, "personal": personal})
    response.headers["cache-control"] = "private, no-store"  # the answer is the visitor's
    return response


async def signal(request: TrackingRequest) -> TrackingResponse:
    """Record a visit: 200 ``{"stored": true}``, or ``{"stored": false, "reason"}`` when the
    visitor's consent does not allow it; 403 for a token that does not verify (the tracker
    then asks /init for a new one, as with /collect)."""
    body = decoded_body(request, decoder=signal_decoder, what="signal")
    site = await _site(request, body.site)
    if body.type in {"impression", "click"}:
        raise Refusal(400, "ad impressions and clicks are recorded by /ad-event, not sent here")
    if body.type != "visit":
        raise Refusal(400, "type must be visit")
    path = _page_path(site, body.url)
    facts = request_facts(request=request)
    refused = await _not_allowed(site=site, bid=body.bid, claimed=body.consent, facts=facts)
    if refused:
        return json_response(200, {"stored": False, "reason": refused})
    if not _token_verifies(site=site, bid=body.bid, token=body.token):
        raise Refusal(403, "invalid or expired token: call /init for a new one")
    title = " ".join(body.title.split())[:MAX_TITLE_LENGTH]
    try:
        await visit_record(
            site_id=site.public_id,
            bid=body.bid,
            path=path,
            title=title,
            at_ms=int(time.time() * 1000),
        )
    except RedisError:
        raise Refusal(503, "signal not stored, retry later") from None
    return json_response(200, {"stored": True})


ENDPOINTS: EndpointTable = {
    "/recs/items": (items, frozenset({"GET"})),
    "/recs/signal": (signal, frozenset({"POST"})),
}
