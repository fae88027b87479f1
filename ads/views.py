"""HTTP endpoints of the ad server besides the SSE stream (ads.streams):

- ``GET /ads/listing?placement=<key>``: mobile apps fetch a few ads for a placement and rotate
  them locally; each comes with signed tracking URLs. ETag and cache headers let apps poll
  cheaply.
- ``GET /ads/vast?placement=<key>``: a VAST 4.2 document for video players.
- ``GET /ads/click/<token>``: records the click, then redirects to the advertiser; the
  address comes from the signed token only (no open redirect).
- ``GET /ads/track/<token>``: records an impression, viewable impression or video event of a
  signed tracking URL (apps, VAST players) and answers a 1x1 GIF.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Any

import msgspec
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.views.decorators.http import require_GET

from ads import serving
from ads.signing import InvalidTrackingToken, TrackedImpression, unsign
from ads.vast import empty_vast, vast_xml
from ingest.endpoints import TRANSPARENT_GIF, Refusal, identify, in_database, store_ad_event
from ingest.schemas import AdEventPayload, Consent
from ingest.selectors import cached_site_config, load_site_config
from ingest.services import RequestFacts
from ingest.sinks import SinkUnavailable

LISTING_SIZE = 5


def _request_parts(request: HttpRequest) -> tuple[dict[str, str], dict[str, str], str]:
    headers = {name.lower(): value for name, value in request.headers.items()}
    query = {name: str(value) for name, value in request.GET.items()}
    return query, headers, request.META.get("REMOTE_ADDR", "")


def _refused(refusal: Refusal) -> JsonResponse:
    return JsonResponse({"error": refusal.message}, status=refusal.status)


@require_GET
async def listing(request: HttpRequest) -> HttpResponse:
    query, headers, remote_addr = _request_parts(request)
    try:
        slot = await serving.placement(query.get("placement", ""))
        viewer = await serving.viewer_for(
            slot=slot, query=query, headers=headers, remote_addr=remote_addr
        )
    except Refusal as refusal:
        return _refused(refusal)
    host = f"{request.scheme}://{request.get_host()}"
    chosen: list[dict[str, Any]] = []
    for ad in await serving.decide(slot=slot, viewer=viewer, count=LISTING_SIZE):
        impression = serving.new_impression_id()
        item = serving.rendering(ad=ad, slot=slot, impression_id=impression, host=host)
        item["tracking"] = {
            event: serving.tracking_url(host, ad, slot, impression, event)
            for event in ("impression", "viewable")
        }
        chosen.append(item)
    # The ETag names the ads (in any order), not their one-off impression ids and signatures:
    # an app that already holds these ads keeps rotating them.
    names = sorted((item["ad"], item["campaign"]) for item in chosen)
    tag = hashlib.sha256(json.dumps([slot.key, names]).encode()).hexdigest()[:16]
    etag = f'W/"{tag}"'
    if request.headers.get("If-None-Match") == etag:
        response = HttpResponse(status=304)
    else:
        response = JsonResponse(
            {"placement": slot.key, "rotation_seconds": slot.rotation_seconds, "ads": chosen}
        )
    response["ETag"] = etag
    response["Cache-Control"] = f"private, max-age={slot.rotation_seconds}"
    response["Vary"] = "Origin"
    return response


@require_GET
async def vast(request: HttpRequest) -> HttpResponse:
    query, headers, remote_addr = _request_parts(request)
    try:
        slot = await serving.placement(query.get("placement", ""))
        viewer = await serving.viewer_for(
            slot=slot, query=query, headers=headers, remote_addr=remote_addr
        )
    except Refusal as refusal:
        return _refused(refusal)
    host = f"{request.scheme}://{request.get_host()}"
    chosen = await serving.decide(slot=slot, viewer=viewer, kinds=frozenset({"video"}))
    ad = chosen[0] if chosen else None
    if ad is None or not ad.creative.media_files:
        body = empty_vast()
    else:
        impression = serving.new_impression_id()
        body = vast_xml(
            ad=ad,
            impression_id=impression,
            impression_url=serving.tracking_url(host, ad, slot, impression, "impression"),
            click_url=serving.click_url(host, ad, slot, impression),
            tracking_url=lambda event: serving.tracking_url(host, ad, slot, impression, event),
            error_url=f"{host}/ads/vast-error?code=[ERRORCODE]",
        )
    response = HttpResponse(body, content_type="application/xml")
    response["Cache-Control"] = "no-store"
    if origin := request.headers.get("Origin"):
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Allow-Credentials"] = "true"
    return response


async def _record(request: HttpRequest, tracked: TrackedImpression) -> None:
    """Store the event of a signed URL like a confirmed /ad-event from an anonymous viewer."""
    found, site = cached_site_config(tracked.site)
    if not found:
        site = await in_database(load_site_config)(tracked.site)
    if site is None:
        raise Refusal(404, "unknown site")
    _, headers, remote_addr = _request_parts(request)
    facts = RequestFacts.from_headers(headers=headers, remote_addr=remote_addr, trusted_proxies=0)
    visitor_id = await identify(site, None, None, Consent(), facts)
    event = msgspec.convert(
        {
            "type": tracked.event,
            "site": tracked.site,
            "impression": tracked.impression,
            "campaign": tracked.campaign,
            "ad": tracked.ad,
            "placement": tracked.placement,
            "creative": tracked.creative,
        },
        AdEventPayload,
    )
    await store_ad_event(event=event, site=site, visitor_id=visitor_id, facts=facts)


@require_GET
async def click(request: HttpRequest, token: str) -> HttpResponse:
    try:
        tracked = unsign(token)
    except InvalidTrackingToken:
        return HttpResponse(
            "This ad link is invalid or has expired.\n", status=400, content_type="text/plain"
        )
    if tracked.event != "click" or not tracked.target:
        return HttpResponse("Not a click link.\n", status=400, content_type="text/plain")
    # The visitor still gets where they wanted to go if the click cannot be stored.
    with contextlib.suppress(Refusal, SinkUnavailable, TimeoutError):
        await _record(request, tracked)
    response = HttpResponseRedirect(tracked.target)
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer-when-downgrade"
    return response


@require_GET
async def track(request: HttpRequest, token: str) -> HttpResponse:
    try:
        tracked = unsign(token)
        if tracked.event == "click":
            raise InvalidTrackingToken("click links redirect")
        await _record(request, tracked)
    except InvalidTrackingToken:
        return JsonResponse({"error": "invalid or expired tracking URL"}, status=400)
    except Refusal as refusal:
        return _refused(refusal)
    except (SinkUnavailable, TimeoutError):
        response = JsonResponse({"error": "event not stored, retry later"}, status=503)
        response["Retry-After"] = "5"
        return response
    pixel = HttpResponse(TRANSPARENT_GIF, content_type="image/gif")
    pixel["Cache-Control"] = "no-store"
    return pixel
