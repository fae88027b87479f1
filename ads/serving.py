"""Serving one ad: who is asking (consent checked on the server), the decision over the
process's snapshot and counters, and the ad as the browser or app receives it, with signed
tracking and click URLs. Shared by the SSE stream (ads.streams), the listing and the VAST
endpoint (ads.endpoints).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from ads import ranking
from ads.assets import first_party_asset_url, rewrite_html_assets
from ads.counters import campaign_delivery, get_counters
from ads.decisioning import choose_ad
from ads.delivery import DeliveryContext, LiveAd, PlacementSlot
from ads.signing import Delivery, TrackedImpression, sign, sign_delivery
from ads.snapshot import Snapshot, current, current_if_fresh
from events.schemas import Consent
from ingest.http import Refusal
from ingest.selectors import SiteConfig, consent_verified, site_config_get, site_origin_check
from ingest.services import RequestFacts, visitor_identify

_rng = random.Random()  # noqa: S311 (ad rotation, not secrecy)


@dataclass(frozen=True)
class Viewer:
    """Who an ad is chosen for."""

    site: SiteConfig
    visitor_id: str  # browser id with consent, else the day's anonymous hash
    path: str
    country: str
    device: str
    personalised: bool  # the recorded decision grants ads personalisation


async def snapshot() -> Snapshot:
    fresh = current_if_fresh()
    if fresh is not None:
        return fresh
    # current() (re)loads from MongoDB: keep that off the event loop.
    return await sync_to_async(current, thread_sensitive=False)()


async def placement(key: str) -> PlacementSlot:
    slot = (await snapshot()).slots_by_key.get(key)
    if slot is None:
        raise Refusal(404, f"unknown placement {key!r}")
    return slot


async def viewer_for(
    *, slot: PlacementSlot, query: dict[str, str], headers: dict[str, str], remote_addr: str
) -> Viewer:
    """The viewer of a request for this placement; Refusal when the site refuses it."""
    site = await site_config_get(public_id=slot.site_public_id)
    if not site.ads_enabled:
        raise Refusal(403, "ads are disabled for this site")
    site_origin_check(site=site, headers=headers)
    facts = RequestFacts.from_headers(
        headers=headers, remote_addr=remote_addr, trusted_proxies=settings.INGEST_TRUSTED_PROXIES
    )
    bid = query.get("bid") or None
    claimed = Consent(analytics=bool(bid), ads=query.get("ads") == "1")
    consent = await consent_verified(
        site=site,
        bid=bid,
        claimed=claimed,
        country=facts.country,
        privacy_signal=facts.do_not_track,
    )
    try:
        visitor_id = await visitor_identify(
            site=site, bid=bid, token=query.get("token"), consent=consent, facts=facts
        )
    except Refusal:
        consent = Consent()
        visitor_id = await visitor_identify(
            site=site, bid=None, token=None, consent=consent, facts=facts
        )
    return Viewer(
        site=site,
        visitor_id=visitor_id,
        path=(query.get("path") or "/")[:1024],
        country=facts.country,
        device=facts.agent.device_type,
        personalised=consent.ads,
    )


async def decide(
    *,
    slot: PlacementSlot,
    viewer: Viewer,
    avoid: frozenset[int] = frozenset(),
    kinds: frozenset[str] | None = None,
    count: int = 1,
) -> list[LiveAd]:
    """Up to ``count`` different ads for the slot, best first by the decision's draw (the
    counters are read once for all of them), ranked by the CTR model when one is promoted."""
    ads = (await snapshot()).ads_for(slot)
    if kinds is not None:
        ads = tuple(ad for ad in ads if ad.creative.kind in kinds)
    if not ads:
        return []
    campaigns = {ad.campaign_id: ad.limits.frequency_period_seconds for ad in ads}
    delivery = await campaign_delivery(campaigns)
    frequency = await get_counters().frequency(viewer.visitor_id, campaigns)
    context = DeliveryContext(
        site_id=slot.site_id,
        path=viewer.path,
        country=viewer.country,
        device=viewer.device,
        now=datetime.now(UTC),
        personalised=viewer.personalised,
        frequency=frequency,
    )
    # One predictor per request: a listing's later picks reuse the first pick's predictions.
    predict_ctr = ranking.predictor(slot=slot, context=context)
    exploration = ranking.exploration_share()
    chosen: list[LiveAd] = []
    while len(chosen) < count:
        ad = choose_ad(
            ads=ads,
            slot=slot,
            context=context,
            delivery=delivery,
            rng=_rng,
            avoid=avoid,
            predict_ctr=predict_ctr,
            exploration=exploration,
        )
        if ad is None or ad in chosen:
            break
        chosen.append(ad)
        ads = tuple(candidate for candidate in ads if candidate.ad_id != ad.ad_id)
    return chosen


def new_impression_id() -> str:
    return uuid.uuid4().hex


def delivery(
    ad: LiveAd, slot: PlacementSlot, impression_id: str, *, viewer: str = "", rotation: int = 0
) -> Delivery:
    """What is signed into the impression token and tracking URLs of one delivery: ``viewer``
    is the identity the decision counted frequency by, ``rotation`` the seconds between the
    displays of an item an app may show again (0: shown once)."""
    return Delivery(
        impression=impression_id,
        site=slot.site_public_id,
        campaign=ad.campaign_id,
        ad=ad.ad_id,
        placement=slot.placement_id,
        creative=ad.creative.kind,
        viewer=viewer,
        rotation=rotation,
        issued=int(time.time()),
    )


def click_url(host: str, ad: LiveAd, issued: Delivery) -> str:
    clicked = TrackedImpression(**vars(issued), event="click", target=ad.creative.click_url)
    return f"{host}/ads/click?t={sign(clicked)}"


def tracking_url(host: str, issued: Delivery, event: str) -> str:
    return f"{host}/ads/track?t={sign(TrackedImpression(**vars(issued), event=event))}"


def rendering(*, ad: LiveAd, slot: PlacementSlot, issued: Delivery, host: str) -> dict[str, Any]:
    """The ad as a page or an app renders it, with the impression token its events must carry."""
    return {**_impression_rendering(ad, issued, host), **_creative_rendering(ad, slot, host)}


def rendering_json(*, ad: LiveAd, slot: PlacementSlot, issued: Delivery, host: str) -> str:
    """rendering() as JSON (the SSE stream's event): the creative's part is encoded once per
    ad version, placement and host, only the impression's part (its id and two signatures) for
    each impression. After a campaign change every stream of a process renders at once."""
    key = (ad.ad_id, ad.version, slot.placement_id, slot.rotation_seconds, host)
    creative = _creative_json.get(key)
    if creative is None:
        if len(_creative_json) >= MAX_RENDERED_CREATIVES:
            _creative_json.clear()  # versions of republished ads pile up otherwise
        creative = _creative_json[key] = json.dumps(_creative_rendering(ad, slot, host))
    impression = json.dumps(_impression_rendering(ad, issued, host))
    return f"{impression[:-1]}, {creative[1:]}"


MAX_RENDERED_CREATIVES = 10_000
# (ad id, version, placement id, rotation seconds, host) -> the JSON of _creative_rendering.
# An ad's content changes only with a new version (publishing raises it on every publish).
_creative_json: dict[tuple[int, int, int, int, str], str] = {}


def _impression_rendering(ad: LiveAd, issued: Delivery, host: str) -> dict[str, Any]:
    return {
        "impression": issued.impression,
        "impression_token": sign_delivery(issued),
        "click_url": click_url(host, ad, issued),
    }


def _creative_rendering(ad: LiveAd, slot: PlacementSlot, host: str) -> dict[str, Any]:
    creative = ad.creative
    return {
        "placement": slot.placement_id,
        "campaign": ad.campaign_id,
        "ad": ad.ad_id,
        "kind": creative.kind,
        "width": creative.width,
        "height": creative.height,
        # Images come from Naboria's origin: the visitor's browser never fetches from the
        # advertiser's server (docs/ads.md, Privacy).
        "image_url": first_party_asset_url(host, creative.image_url),
        "html": rewrite_html_assets(creative.html, host),
        "title": creative.title,
        "text": creative.text,
        "call_to_action": creative.call_to_action,
        "rotate_after": slot.rotation_seconds,
    }
