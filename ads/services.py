"""Writes of the ads app: storing an ad event (the confirmed /ad-event, click redirects and
tracking URLs), and the writes of ad authoring that are more than a save: sanitising HTML
creatives, pausing and resuming in bulk, each publishing what it changed (ads.publishing)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import nh3
from django.conf import settings
from django.db import transaction

from ads.counters import count_impression, get_counters
from ads.models import (
    Ad,
    AdStatus,
    Advertiser,
    Campaign,
    CampaignStatus,
    CreativeKind,
    Placement,
)
from ads.publishing import ads_publish, campaigns_publish, placements_publish
from events.schemas import AdEventPayload, Impression
from ingest.selectors import SiteConfig
from ingest.services import RequestFacts, ad_row_from_event
from ingest.sinks import get_sink
from sites.models import Site


async def ad_event_store(
    *,
    event: AdEventPayload,
    site: SiteConfig,
    visitor_id: str,
    facts: RequestFacts,
    frequency_key: str,
) -> str:
    """Make the ad event durable (Kafka ack or ClickHouse insert), then count an impression for
    caps and pacing once, unless a bot made it (stored for reports, never counted); its event
    id. ``frequency_key`` is the identity the delivery was decided for: frequency caps count
    by it, so a decision and its impressions agree on who saw the ad. Raises SinkUnavailable
    or TimeoutError when not stored, and ingest.services.EventTooOld (before anything is
    stored) for an event older than the deduplication window."""
    event_id, row = ad_row_from_event(event=event, site=site, visitor_id=visitor_id, facts=facts)
    # The durable write comes first, for a retry too: a 503 (a write that failed or timed out,
    # and may still be delivered later) is then always safe to retry, and a 200 always means
    # stored. Writing an event twice is harmless: its id derives from (site, impression, type)
    # and the writers store each id once.
    await asyncio.wait_for(
        asyncio.wrap_future(get_sink().write_ad_row(row, key=site.public_id)),
        timeout=settings.INGEST_AD_EVENT_TIMEOUT_SECONDS,
    )
    # Counting is not idempotent, so a stored impression is counted by whoever claims its id
    # first: a retry is not counted twice. Claimed before counting, so a crash in between
    # leaves one impression uncounted rather than counted twice.
    if facts.agent.is_bot or not isinstance(event, Impression):
        return event_id
    if await get_counters().claim(f"{site.public_id}:{event_id}"):
        await count_impression(campaign_id=event.campaign, visitor_id=frequency_key)
    return event_id


# What an HTML banner may contain: markup, images and links. No scripts, styles sheets, forms,
# frames or event handlers; it is also shown in a sandboxed frame without scripts.
HTML_TAGS = {
    "a",
    "b",
    "br",
    "div",
    "em",
    "h1",
    "h2",
    "h3",
    "i",
    "img",
    "p",
    "small",
    "span",
    "strong",
    "table",
    "tbody",
    "td",
    "th",
    "tr",
    "u",
}
HTML_ATTRIBUTES = {
    "*": {"style", "class", "title"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
}


def sanitise_banner_html(html: str) -> str:
    return nh3.clean(
        html,
        tags=HTML_TAGS,
        attributes=HTML_ATTRIBUTES,
        url_schemes={"https", "http"},
        link_rel="noopener noreferrer",
    )


def campaigns_set_status(*, campaigns: Iterable[Campaign], status: CampaignStatus) -> int:
    with transaction.atomic():
        chosen = list(campaigns)
        Campaign.objects.filter(pk__in=[campaign.pk for campaign in chosen]).update(status=status)
        campaigns_publish(campaigns=chosen)
    return len(chosen)


def ads_set_status(*, ads: Iterable[Ad], status: AdStatus) -> int:
    with transaction.atomic():
        ids = [ad.pk for ad in ads]
        Ad.objects.filter(pk__in=ids).update(status=status)
        ads_publish(
            ads=Ad.objects.filter(pk__in=ids)
            .select_related("campaign__advertiser")
            .prefetch_related("campaign__placements__site", "video_files")
        )
    return len(ids)


DEMO_ADVERTISER = "Demo Outdoor Co."


def demo_ads_ensure(*, site: Site) -> Placement:
    """The demo's placement, advertiser, campaign and two banner ads (idempotent)."""
    placement = Placement.objects.filter(site=site, name="Sidebar").first()
    if placement is None:
        placement = Placement.objects.create(
            site=site, name="Sidebar", sizes=["300x250"], formats=["image", "html"]
        )
    advertiser, created = Advertiser.objects.get_or_create(
        organization=site.organization, name=DEMO_ADVERTISER
    )
    if created:
        campaign = Campaign.objects.create(
            advertiser=advertiser,
            name="Winter hiking",
            status=CampaignStatus.ACTIVE,
            frequency_cap=20,
            daily_cap=100_000,
        )
        campaign.placements.add(placement)
        for name, colour in [("Boots", "2f5bd3"), ("Jackets", "1f7a4d")]:
            Ad.objects.create(
                campaign=campaign,
                name=name,
                kind=CreativeKind.HTML,
                width=300,
                height=250,
                click_url="https://example.org/winter",
                html=sanitise_banner_html(
                    f'<div style="width:300px;height:250px;background:#{colour};color:#fff;'
                    f'font:20px sans-serif;padding:24px;box-sizing:border-box">'
                    f"<strong>{name}</strong><p>Winter collection, demo ad</p></div>"
                ),
            )
    placements_publish(placements=[placement])
    campaigns_publish(campaigns=Campaign.objects.filter(advertiser=advertiser))
    return placement
