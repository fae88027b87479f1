"""Request/response endpoints of the ad server (the SSE stream is ads.streams). Like the
tracking endpoints they are served by a lean ASGI application ahead of Django (naboria.asgi),
on the same plumbing (ingest.http): they are hit for every ad an app or a player shows.

- ``POST /ad-event``: an impression, viewable impression or click confirmed by the tracker,
  stored before the answer; the ad's facts come from the impression token the ad came with
  (ads.signing), so only what the ad server delivered is stored (docs/tracking-protocol.md).
- ``GET /ads/listing?placement=<key>``: mobile apps fetch a few ads for a placement and rotate
  them locally; each comes with signed tracking URLs. ETag and cache headers let apps poll
  cheaply.
- ``GET /ads/vast?placement=<key>``: a VAST 4.2 document for video players: an InLine ad, or a
  Wrapper of a third party's VAST tag (only for viewers with ads consent).
- ``GET /ads/vast-error?t=<token>&code=<VAST error code>``: the error beacon of a VAST
  document: records the player's error code for the delivery and answers a 1x1 GIF.
- ``GET /ads/click?t=<token>``: records the click, then redirects to the advertiser; the
  address comes from the signed token only (no open redirect).
- ``GET /ads/track?t=<token>``: records an impression, viewable impression or video event of a
  signed tracking URL (apps, VAST players), or the click of a wrapper's click tracking URL (a
  click token without a target), and answers a 1x1 GIF.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from typing import Any

from ads import serving
from ads.assets import ASSET_ENDPOINTS
from ads.services import ImpressionNotRecorded, ad_event_store, ad_signal_remember
from ads.signing import (
    TOKEN_MAX_AGE_SECONDS,
    Delivery,
    InvalidTrackingToken,
    TrackedImpression,
    sign,
    unsign,
    unsign_delivery,
)
from ads.vast import ERROR_CODE_MACRO, empty_vast, vast_wrapper_xml, vast_xml
from events.schemas import (
    AD_EVENT_CLASSES,
    UNDEFINED_VAST_ERROR,
    AdEventPayload,
    Consent,
    VastError,
    ad_event_request_decoder,
)
from ingest.http import (
    TRANSPARENT_GIF,
    EndpointTable,
    Refusal,
    TrackingRequest,
    TrackingResponse,
    decoded_body,
    error_response,
    json_response,
    request_host,
)
from ingest.selectors import consent_verified, site_config_for_request, site_config_get
from ingest.services import EventTooOld, request_facts, visitor_identify
from ingest.sinks import SinkUnavailable

LISTING_SIZE = 5


def _event_of(
    delivery: Delivery,
    *,
    kind: str,
    consent: Consent,
    display: int = 1,
    url: str = "",
    app: str | None = None,
    ts: int | None = None,
) -> AdEventPayload:
    """The event to store for the ``display``-th display of a delivery; 400 for a display the
    delivery cannot have had yet (an app shows a cached item at most once per rotation)."""
    try:
        impression = delivery.display_impression(display, now=time.time())
    except ValueError as error:
        raise Refusal(400, str(error)) from None
    return AD_EVENT_CLASSES[kind](
        site=delivery.site,
        impression=impression,
        campaign=delivery.campaign,
        ad=delivery.ad,
        placement=delivery.placement,
        creative=delivery.creative,
        url=url,
        consent=consent,
        app=app,
        ts=ts,
    )


async def ad_event(request: TrackingRequest) -> TrackingResponse:
    body = decoded_body(request, decoder=ad_event_request_decoder, what="ad event")
    try:
        delivery = unsign_delivery(body.impression_token)
    except InvalidTrackingToken:
        raise Refusal(
            403, "invalid or expired impression_token: send the one the ad was delivered with"
        ) from None
    site = await site_config_for_request(public_id=delivery.site, headers=request.headers)
    if not site.ads_enabled:
        raise Refusal(403, "ads are disabled for this site")
    facts = request_facts(request=request)
    consent = await consent_verified(
        site=site,
        bid=body.bid,
        claimed=body.consent,
        country=facts.country,
        privacy_signal=facts.do_not_track,
    )
    visitor_id = await visitor_identify(
        site=site, bid=body.bid, token=body.token, consent=consent, facts=facts
    )
    event = _event_of(
        delivery,
        kind=body.type,
        consent=consent,
        display=body.display,
        url=body.url,
        app=body.app,
        ts=body.ts,
    )
    try:
        event_id = await ad_event_store(
            event=event,
            site=site,
            visitor_id=visitor_id,
            facts=facts,
            frequency_key=delivery.viewer or visitor_id,
        )
    except EventTooOld as too_old:
        raise Refusal(400, f"ad event {too_old}") from None
    except ImpressionNotRecorded:
        raise Refusal(
            409, "no impression of this ad was recorded: report the impression, then the click"
        ) from None
    except (SinkUnavailable, TimeoutError) as error:
        return error_response(503, f"event not stored, retry later ({error or 'timed out'})")
    if consent.ads:  # visitor_identify verified the token of a bid resting on it
        await ad_signal_remember(event=event, site=site, bid=body.bid, facts=facts)
    return json_response(200, {"stored": True, "event_id": event_id})


async def _placement_and_viewer(
    request: TrackingRequest, *, headers: dict[str, str] | None = None
) -> tuple[Any, serving.Viewer]:
    """The requested placement and its viewer, judged by ``headers`` (the request's own by
    default)."""
    slot = await serving.placement(request.query.get("placement", ""))
    viewer = await serving.viewer_for(
        slot=slot,
        query=request.query,
        headers=request.headers if headers is None else headers,
        remote_addr=request.remote_addr,
    )
    return slot, viewer


async def listing(request: TrackingRequest) -> TrackingResponse:
    slot, viewer = await _placement_and_viewer(request)
    host = request_host(request.headers)
    chosen: list[dict[str, Any]] = []
    versions = []
    for ad in await serving.decide(slot=slot, viewer=viewer, count=LISTING_SIZE):
        # An app shows its cached items again every rotation: each display is counted (the
        # tracking URLs take the display number), by the identity this decision capped by.
        issued = serving.delivery(
            ad,
            slot,
            serving.new_impression_id(),
            viewer=viewer.visitor_id,
            rotation=slot.rotation_seconds,
        )
        item = serving.rendering(ad=ad, slot=slot, issued=issued, host=host)
        item["tracking"] = {
            event: serving.tracking_url(host, issued, event) for event in ("impression", "viewable")
        }
        chosen.append(item)
        versions.append((ad.ad_id, ad.campaign_id, ad.version))
    # The ETag names the ads and their versions (an edited creative is a new version), not the
    # one-off impression ids and signatures, so an app that holds these ads keeps rotating
    # them; and it changes every half token lifetime, so a cached listing's tracking URLs
    # never outlive their signature.
    epoch = int(time.time()) // (TOKEN_MAX_AGE_SECONDS // 2)
    tag = hashlib.sha256(json.dumps([slot.key, sorted(versions), epoch]).encode()).hexdigest()
    etag = f'W/"{tag[:16]}"'
    if request.headers.get("if-none-match") == etag:
        response = TrackingResponse(304, content_type="")
    else:
        response = json_response(
            200, {"placement": slot.key, "rotation_seconds": slot.rotation_seconds, "ads": chosen}
        )
    response.headers.update(
        {"etag": etag, "cache-control": f"private, max-age={slot.rotation_seconds}"}
    )
    return response


# Video player SDKs that fetch VAST from a frame of their own origin, not the page's: the IMA
# SDK's frame is served from imasdk.googleapis.com, whatever site embeds the player. Their
# requests are answered as requests without an Origin (apps, servers) are.
VIDEO_PLAYER_ORIGINS = frozenset({"https://imasdk.googleapis.com"})
VIDEO_KINDS = frozenset({"video"})


async def vast(request: TrackingRequest) -> TrackingResponse:
    headers = request.headers
    if headers.get("origin") in VIDEO_PLAYER_ORIGINS:
        headers = {name: value for name, value in headers.items() if name != "origin"}
    slot, viewer = await _placement_and_viewer(request, headers=headers)
    host = request_host(request.headers)
    # A viewer without ads consent is never given a wrapper (ads.decisioning): it would make
    # the player contact the third party.
    chosen = await serving.decide(slot=slot, viewer=viewer, kinds=VIDEO_KINDS)
    ad = chosen[0] if chosen else None
    if ad is None or not (ad.creative.is_wrapper or ad.creative.media_files):
        body = empty_vast()
    else:
        issued = serving.delivery(ad, slot, serving.new_impression_id(), viewer=viewer.visitor_id)
        failed = TrackedImpression(**vars(issued), event="error")
        impression_url = serving.tracking_url(host, issued, "impression")
        error_url = f"{host}/ads/vast-error?t={sign(failed)}&code={ERROR_CODE_MACRO}"

        def tracking_url(event: str) -> str:
            return serving.tracking_url(host, issued, event)

        if ad.creative.is_wrapper:
            body = vast_wrapper_xml(
                ad=ad,
                impression_id=issued.impression,
                impression_url=impression_url,
                # A click token without a target: a beacon for /ads/track, not a redirect.
                click_tracking_url=tracking_url("click"),
                tracking_url=tracking_url,
                error_url=error_url,
            )
        else:
            body = vast_xml(
                ad=ad,
                impression_id=issued.impression,
                impression_url=impression_url,
                click_url=serving.click_url(host, ad, issued),
                tracking_url=tracking_url,
                error_url=error_url,
            )
    # Players fetch VAST cross-origin with credentials (the dispatcher adds the origin).
    return TrackingResponse(
        200,
        body,
        content_type="application/xml",
        headers={"cache-control": "no-store", "access-control-allow-credentials": "true"},
    )


async def _record(
    request: TrackingRequest, tracked: TrackedImpression, *, error_code: int | None = None
) -> None:
    """Store the event of a signed URL like a confirmed /ad-event from an anonymous viewer (its
    frequency counted by the identity the delivery was decided for). ``d`` is the display
    number of an app's cached listing item; ``error_code`` a VAST error beacon's code."""
    display = request.query.get("d", "1")
    if not (display.isascii() and display.isdigit() and len(display) <= 9):
        raise Refusal(400, "d must be the display number: 1, 2, ...")
    event = _event_of(tracked, kind=tracked.event, consent=Consent(), display=int(display))
    if error_code is not None and isinstance(event, VastError):
        event.code = error_code
    site = await site_config_get(public_id=tracked.site)
    facts = request_facts(request=request)
    visitor_id = await visitor_identify(
        site=site, bid=None, token=None, consent=Consent(), facts=facts
    )
    await ad_event_store(
        event=event,
        site=site,
        visitor_id=visitor_id,
        facts=facts,
        frequency_key=tracked.viewer or visitor_id,
    )


def _pixel() -> TrackingResponse:
    return TrackingResponse(
        200, TRANSPARENT_GIF, content_type="image/gif", headers={"cache-control": "no-store"}
    )


def _text(status: int, text: str) -> TrackingResponse:
    return TrackingResponse(status, text.encode(), content_type="text/plain; charset=utf-8")


async def click(request: TrackingRequest) -> TrackingResponse:
    try:
        tracked = unsign(request.query.get("t", ""))
    except InvalidTrackingToken:
        return _text(400, "This ad link is invalid or has expired.\n")
    if tracked.event != "click" or not tracked.target:
        return _text(400, "Not a click link.\n")
    # The visitor still gets where they wanted to go if the click cannot be stored (nor is
    # one stored of an ad whose impression was never reported).
    with contextlib.suppress(Refusal, SinkUnavailable, TimeoutError, ImpressionNotRecorded):
        await _record(request, tracked)
    return TrackingResponse(
        302,
        content_type="",
        headers={"location": tracked.target, "cache-control": "no-store"},
    )


async def track(request: TrackingRequest) -> TrackingResponse:
    try:
        tracked = unsign(request.query.get("t", ""))
    except InvalidTrackingToken:
        return error_response(400, "invalid or expired tracking URL")
    # A click token with a target is a click link; one without is a wrapper's click tracking.
    if tracked.event == "click" and tracked.target:
        return error_response(400, "click links redirect: use /ads/click")
    try:
        await _record(request, tracked)
    except ImpressionNotRecorded:
        return error_response(
            409, "no impression of this ad was recorded: call its impression URL first"
        )
    except (SinkUnavailable, TimeoutError):
        return error_response(503, "event not stored, retry later")
    return _pixel()


def _vast_error_code(value: str | None) -> int:
    """The VAST error code of the beacon's ``code``: three digits, or the macro itself when the
    player did not fill it in (it knows only the bracketed form, see ads.vast), which is an
    error without a code."""
    if value == "[ERRORCODE]":
        return UNDEFINED_VAST_ERROR
    if value is None or not (value.isascii() and value.isdigit() and 100 <= int(value) <= 999):
        raise Refusal(400, "code must be the VAST error code: three digits, 100 to 999")
    return int(value)


async def vast_error(request: TrackingRequest) -> TrackingResponse:
    try:
        tracked = unsign(request.query.get("t", ""))
    except InvalidTrackingToken:
        return error_response(400, "invalid or expired tracking URL")
    if tracked.event != "error":
        return error_response(400, "not a VAST error URL: use the one of the VAST document")
    code = _vast_error_code(request.query.get("code"))
    try:
        await _record(request, tracked, error_code=code)
    except (SinkUnavailable, TimeoutError):
        return error_response(503, "event not stored, retry later")
    return _pixel()


ENDPOINTS: EndpointTable = {
    "/ad-event": (ad_event, frozenset({"POST"})),
    "/ads/listing": (listing, frozenset({"GET"})),
    "/ads/vast": (vast, frozenset({"GET"})),
    "/ads/click": (click, frozenset({"GET"})),
    "/ads/track": (track, frozenset({"GET"})),
    "/ads/vast-error": (vast_error, frozenset({"GET"})),
    # GET /ads/asset?u=<token>: a creative's image, fetched once and served from here.
    **ASSET_ENDPOINTS,
}
