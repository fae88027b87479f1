"""The tracking endpoints: /init, /collect, the /p.gif pixel, /consent and /decision (/ad-event
is the ad server's, ads.endpoints).

They are the hot path of the product, so they do not go through Django's request cycle (its
middleware stack costs an order of magnitude in throughput, see bench/RESULTS.md): ingest.asgi
turns the ASGI request into a ``TrackingRequest`` (ingest.http) and routes it here. Each
endpoint is a thin adapter: it decodes, then calls the selectors (ingest.selectors: the site,
its origin check, verified consent) and services (ingest.services: identity and rows;
consent.services) that the ad server uses too. The database is only touched on a site-cache
miss or on the first cookieless visitor of a day (the salt). Every failure is a 4xx or 503
with a JSON ``error`` message (docs/tracking-protocol.md).
"""

from __future__ import annotations

from typing import Any

import msgspec

from consent.regions import region_rule
from consent.selectors import recorded_decision
from consent.services import ConsentDecisionRefused, consent_record_create
from events.schemas import (
    Envelope,
    Identifier,
    consent_decision_decoder,
    envelope_decoder,
)
from ingest import identity
from ingest.hot_settings import HOT
from ingest.http import (
    TRANSPARENT_GIF,
    EndpointTable,
    Refusal,
    TrackingRequest,
    TrackingResponse,
    decoded_body,
    error_response,
    in_database,
    json_response,
)
from ingest.selectors import (
    NO_CONSENT,
    SiteConfig,
    consent_verified,
    site_config_for_request,
)
from ingest.services import page_rows_from_batch, request_facts, visitor_identify
from ingest.sinks import SinkFull, SinkUnavailable, get_sink

_identifier_decoder = msgspec.json.Decoder(Identifier)
_json = msgspec.json.Encoder()


def identifier_param(value: str, name: str) -> str:
    """A query parameter that must be an id (site, bid); 400 naming it otherwise. Used by the
    recommendations endpoints (recs.endpoints) too."""
    try:
        return _identifier_decoder.decode(_json.encode(value))
    except msgspec.ValidationError:
        message = f"{name} must be 1-64 characters of letters, digits and . _ : -"
        raise Refusal(400, message) from None


def _identity_answer(*, site: SiteConfig, bid: str) -> dict[str, Any]:
    """A browser id with a fresh token and a link token (docs/tracking-protocol.md)."""
    secret, site_id = site.secrets[0], site.public_id
    return {
        "bid": bid,
        "token": identity.issue_token(secret=secret, bid=bid, site_id=site_id),
        "link": identity.issue_link_token(secret=secret, bid=bid, site_id=site_id),
        "window_seconds": identity.TOKEN_WINDOW_SECONDS,
    }


def _proven_bid(*, site: SiteConfig, query: dict[str, str]) -> str | None:
    """The ``bid`` asked for, if the request proves the server gave it to this browser: a token
    it was issued (of any age up to identity.RENEWAL_MAX_SECONDS), or a link token another
    domain of the site made for it (up to identity.LINK_MAX_SECONDS)."""
    asked = query.get("bid")
    if not asked:
        return None
    bid = identifier_param(asked, "bid")
    in_force, site_id = list(site.secrets), site.public_id
    token, link = query.get("token"), query.get("link")
    if (
        token
        and identity.token_renews(secrets_in_force=in_force, bid=bid, site_id=site_id, token=token)
    ) or (
        link
        and identity.link_token_valid(
            secrets_in_force=in_force, bid=bid, site_id=site_id, token=link
        )
    ):
        return bid
    return None


async def init(request: TrackingRequest) -> TrackingResponse:
    """A browser id and its token. ``bid`` with its ``token`` (or ``link``) renews that id;
    any other ``bid`` is ignored and a new random one issued: nobody claims someone else's."""
    site = await site_config_for_request(
        public_id=identifier_param(request.query.get("site", ""), "site"), headers=request.headers
    )
    bid = _proven_bid(site=site, query=request.query) or identity.issue_browser_id()
    response = json_response(200, _identity_answer(site=site, bid=bid))
    response.headers["cache-control"] = "no-store"
    return response


async def decision(request: TrackingRequest) -> TrackingResponse:
    """The decision recorded for a browser id, for the banner on another domain of the site
    the visitor came from by a decorated link (docs/cross-domain.md): ``bid`` with its ``link``
    token. Only a recorded decision that still counts is handed over (``decision`` is null
    otherwise, and the banner asks); with analytics or ads granted the answer carries the id's
    fresh token too, so the destination continues with the same id."""
    site = await site_config_for_request(
        public_id=identifier_param(request.query.get("site", ""), "site"), headers=request.headers
    )
    # Proven by a link token only: the banner here has no other.
    bid = _proven_bid(site=site, query={**request.query, "token": ""})
    recorded = None
    if bid is not None:
        recorded = await in_database(recorded_decision)(
            site_public_id=site.public_id, visitor_id=bid
        )
    answer: dict[str, Any] = {"decision": recorded}
    if bid is not None and recorded and IDENTIFYING_PURPOSES & set(recorded["granted"]):
        answer.update(_identity_answer(site=site, bid=bid))
    response = json_response(200, answer)
    response.headers["cache-control"] = "no-store"
    return response


async def _accept_page_batch(request: TrackingRequest, envelope: Envelope) -> TrackingResponse:
    site = await site_config_for_request(public_id=envelope.site, headers=request.headers)
    if not site.analytics_enabled:
        raise Refusal(403, "analytics is disabled for this site")
    facts = request_facts(request=request)
    if site.respect_do_not_track and facts.do_not_track:
        return json_response(202, {"accepted": 0, "ignored": "do-not-track"})
    envelope.consent = await consent_verified(
        site=site,
        bid=envelope.bid,
        claimed=envelope.consent,
        country=facts.country,
        privacy_signal=facts.do_not_track,
    )
    visitor_id = await visitor_identify(
        site=site, bid=envelope.bid, token=envelope.token, consent=envelope.consent, facts=facts
    )
    rows, rejections = page_rows_from_batch(
        envelope=envelope, site=site, visitor_id=visitor_id, facts=facts
    )
    rejected = [{"index": item.index, "error": item.error} for item in rejections]
    if not rows:
        return error_response(400, "no valid event in the batch", rejected=rejected)
    try:
        acceptance = get_sink().submit_page_rows(rows, key=site.public_id)
    except SinkFull as full:
        return error_response(503, f"temporarily unable to accept events ({full})")
    # 202 promises the events are durable (docs/durability.md): on Kafka, acknowledged.
    try:
        await acceptance.wait(timeout=HOT.INGEST_ACK_TIMEOUT_SECONDS)
    except (SinkUnavailable, TimeoutError) as error:
        reason = str(error) or "not acknowledged in time"
        return error_response(
            503, f"events not stored yet ({reason}); retry: events with ids are stored once"
        )
    return json_response(202, {"accepted": len(rows), "rejected": rejected})


async def collect(request: TrackingRequest) -> TrackingResponse:
    envelope = decoded_body(request, decoder=envelope_decoder, what="batch")
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


# The purposes whose grant lets the server know the visitor by a browser id: analytics (page
# events) and ads (personalised ad decisions, ad events by the id). A grant of ads alone is
# honoured as such: the answer carries a browser id and token for the ad server.
IDENTIFYING_PURPOSES = frozenset({"analytics", "ads"})


async def consent(request: TrackingRequest) -> TrackingResponse:
    """Record a banner decision. With analytics or ads granted the answer carries a browser id
    and a token (as /init would), so the tracker needs no second round trip.

    A grant (of any purpose beyond the strictly necessary) naming a browser id needs that id's
    valid token (403 otherwise): nobody grants for someone else's id. A withdrawal naming an id
    is recorded against it with or without the token: it can only reduce what is processed,
    and an expired token must never keep it from being recorded. The banner version's
    snapshot decides the rest (consent.services, consent.decisions: 400 with the reason)."""
    decision = decoded_body(request, decoder=consent_decision_decoder, what="consent decision")
    site = await site_config_for_request(public_id=decision.site, headers=request.headers)
    if set(decision.granted) & set(decision.denied):
        raise Refusal(400, "a purpose cannot be both granted and denied")
    facts = request_facts(request=request)
    identifying = bool(IDENTIFYING_PURPOSES & set(decision.granted))
    proven = decision.bid is None or (
        decision.token is not None
        and identity.token_is_valid(
            secrets_in_force=list(site.secrets),
            bid=decision.bid,
            site_id=site.public_id,
            token=decision.token,
        )
    )
    answer: dict[str, Any] = {"recorded": True}
    if decision.bid is not None or identifying:
        # A browser id the visitor has is kept, so a withdrawal is recorded against it.
        bid, kind = decision.bid or identity.issue_browser_id(), "browser"
    else:
        kind = "hashed"
        bid = await visitor_identify(
            site=site, bid=None, token=None, consent=NO_CONSENT, facts=facts
        )
    if identifying:
        answer.update(_identity_answer(site=site, bid=bid))
    try:
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
            visitor_id_proven=proven,
        )
    except ConsentDecisionRefused as refused:
        raise Refusal(refused.status, str(refused)) from None
    response = json_response(201, answer)
    response.headers["cache-control"] = "no-store"
    return response


# A visitor's country changes seldom; a banner's rule reaches visitors within this time.
REGION_MAX_AGE_SECONDS = 600


async def region(request: TrackingRequest) -> TrackingResponse:
    """The location rule of the site's banner for this visitor, from the country of the
    request's IP address: asked by banners whose rule differs outside the EEA, UK and CH, so the
    per-site loader stays the same for everyone (and cacheable). Cached privately: the answer
    is the visitor's."""
    site = await site_config_for_request(
        public_id=identifier_param(request.query.get("site", ""), "site"), headers=request.headers
    )
    country = request_facts(request=request).country
    response = json_response(
        200,
        {
            "country": country,
            "rule": region_rule(elsewhere=site.consent_elsewhere, country=country),
        },
    )
    response.headers["cache-control"] = f"private, max-age={REGION_MAX_AGE_SECONDS}"
    return response


ENDPOINTS: EndpointTable = {
    "/init": (init, frozenset({"GET", "POST"})),
    "/collect": (collect, frozenset({"POST"})),
    "/p.gif": (pixel, frozenset({"GET"})),
    "/consent": (consent, frozenset({"POST"})),
    "/decision": (decision, frozenset({"GET"})),
    "/region": (region, frozenset({"GET"})),
}
