"""Writes of the ads app: storing an ad event (the confirmed /ad-event, click redirects and
tracking URLs) and counting it toward caps and spend, charging CPA campaigns for their
attributed conversions (a periodic job), and the writes of ad authoring that are more than a
save: pausing and resuming in bulk, each publishing what it changed (ads.publishing). HTML
creatives are sanitised on every save (ads.sanitising)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ads.attribution import AttributedConversion, CampaignGoal, conversions_attributed
from ads.counters import click_price, count_impression, get_counters
from ads.models import (
    Ad,
    AdStatus,
    Advertiser,
    Campaign,
    CampaignStatus,
    CreativeKind,
    Placement,
    PricingModel,
    to_micros,
)
from ads.publishing import ads_publish, campaigns_publish, placements_publish
from events.ids import ad_event_id
from events.schemas import AdEventPayload, Click, Impression
from events.tables import DEDUP_WINDOW_DAYS
from ingest.selectors import SiteConfig
from ingest.services import RequestFacts, ad_row_from_event
from ingest.sinks import get_sink
from naboria.redis_client import RedisError
from recs.services import ad_signal_record
from sites.models import Site

logger = logging.getLogger(__name__)


class ImpressionNotRecorded(Exception):
    """A click of a delivery whose impression was never stored: not stored either."""


async def ad_event_store(
    *,
    event: AdEventPayload,
    site: SiteConfig,
    visitor_id: str,
    facts: RequestFacts,
    frequency_key: str,
) -> str:
    """Make the ad event durable (Kafka ack or ClickHouse insert), then count an impression for
    caps, pacing and a CPM campaign's spend once, and a click for a CPC campaign's spend once,
    unless a bot made it (stored for reports, never counted); its event id. ``frequency_key``
    is the identity the delivery was decided for: frequency caps count by it, so a decision
    and its impressions agree on who saw the ad. Raises SinkUnavailable or TimeoutError when
    not stored, ingest.services.EventTooOld (before anything is stored) for an event older
    than the deduplication window, and ImpressionNotRecorded for a click of a delivery whose
    impression was never reported (a click without an impression counts toward nothing)."""
    event_id, row = ad_row_from_event(event=event, site=site, visitor_id=visitor_id, facts=facts)
    counters = get_counters()
    if isinstance(event, Click):
        shown = ad_event_id(site_id=site.public_id, impression=event.impression, kind="impression")
        if not await counters.claimed(f"{site.public_id}:{shown}"):
            raise ImpressionNotRecorded
    # The durable write comes first, for a retry too: a 503 (a write that failed or timed out,
    # and may still be delivered later) is then always safe to retry, and a 200 always means
    # stored. Writing an event twice is harmless: its id derives from (site, impression, type)
    # and the writers store each id once.
    await asyncio.wait_for(
        asyncio.wrap_future(get_sink().write_ad_row(row, key=site.public_id)),
        timeout=settings.INGEST_ACK_TIMEOUT_SECONDS,
    )
    # Counting is not idempotent, so a stored event is counted by whoever claims its id first:
    # a retry is not counted twice. Claimed before counting, so a crash in between leaves one
    # event uncounted rather than counted twice. A click's id derives from its impression, so
    # an impression is charged for one click at most. A bot's impression is claimed too (its
    # clicks are stored for reports), never counted.
    if isinstance(event, Impression):
        claimed = await counters.claim(f"{site.public_id}:{event_id}")
        if claimed and not facts.agent.is_bot:
            await count_impression(campaign_id=event.campaign, visitor_id=frequency_key)
    elif isinstance(event, Click) and not facts.agent.is_bot:
        # Only a CPC campaign's clicks count toward anything: the others are not claimed.
        price = await click_price(campaign_id=event.campaign)
        if price and await counters.claim(f"{site.public_id}:{event_id}"):
            await counters.record_spend(campaign_id=event.campaign, micros=price)
    return event_id


async def ad_signal_remember(
    *, event: AdEventPayload, site: SiteConfig, bid: str | None, facts: RequestFacts
) -> None:
    """Keep a stored impression or click among the visitor's recommendation signals (recs):
    only on a site with recommendations on, for a browser id whose token verified and whose ads
    consent the server accepted (the caller's to check: /ad-event), never for a bot. The event
    is stored already, so a Redis failure is logged, not raised: a signal is worth less than
    an answer that would make the tracker send the event again."""
    if bid is None or not site.recommendations_enabled or facts.agent.is_bot:
        return
    if not isinstance(event, Impression | Click):
        return
    try:
        await ad_signal_record(
            site_id=site.public_id,
            bid=bid,
            kind="click" if isinstance(event, Click) else "impression",
            campaign=event.campaign,
            ad=event.ad,
            impression=event.impression,
            at_ms=facts.received_ms,
        )
    except RedisError:
        logger.warning("ad signal of site %s not kept for recommendations", site.public_id)


# Every run looks at the conversions stored this recently (one already charged is not charged
# again): the job may stop for this long without missing any.
CONVERSION_LOOKBACK = timedelta(hours=1)


def conversions_spend_count(*, now: datetime | None = None) -> int:
    """Charge CPA campaigns (active or paused) for the conversions attributed to them
    (ads.attribution) among those stored in the last CONVERSION_LOOKBACK: each conversion adds
    the campaign's current rate to its spend, once (claimed by its event id in the counters);
    the number charged. The periodic job ``count-ad-conversions`` runs it every minute, so a
    CPA budget binds within minutes of the conversion that exhausts it.

    The last touch competes among every campaign of the organization with a goal, CPA or not:
    a conversion whose last touch is another campaign's costs a CPA campaign nothing. A
    conversion is attributed once, when first seen with a touch; a touch stored after that
    changes the report, not what was charged."""
    moment = now or timezone.now()
    cpa_campaigns = {
        campaign.pk: campaign
        for campaign in Campaign.objects.filter(
            pricing=PricingModel.CPA,
            rate__gt=0,
            status__in=[CampaignStatus.ACTIVE, CampaignStatus.PAUSED],
        ).select_related("advertiser")
    }
    if not cpa_campaigns:
        return 0
    organizations = {campaign.advertiser.organization_id for campaign in cpa_campaigns.values()}
    goals = [
        CampaignGoal.of(campaign)
        for campaign in Campaign.objects.filter(
            advertiser__organization_id__in=organizations
        ).exclude(goal_event="", goal_path="")
    ]
    inserted_from = moment - CONVERSION_LOOKBACK
    conversions = conversions_attributed(
        site_ids=list(
            Site.objects.filter(organization_id__in=organizations).values_list(
                "public_id", flat=True
            )
        ),
        goals=goals,
        # Ingestion takes events up to DEDUP_WINDOW_DAYS old: older ones were never stored
        # since inserted_from.
        start=inserted_from - timedelta(days=DEDUP_WINDOW_DAYS + 1),
        end=moment + timedelta(minutes=1),
        inserted_from=inserted_from,
    )
    prices = {pk: to_micros(campaign.rate) for pk, campaign in cpa_campaigns.items()}
    return async_to_sync(_conversions_charge)(
        [conversion for conversion in conversions if conversion.campaign_id in prices], prices
    )


async def _conversions_charge(
    conversions: list[AttributedConversion], prices: dict[int, int]
) -> int:
    # Claimed before charged, as events are: a crash in between leaves conversions uncharged
    # rather than charged twice.
    counters = get_counters()
    spent: Counter[int] = Counter()
    charged = 0
    for conversion in conversions:
        if await counters.claim(f"conversion:{conversion.site_id}:{conversion.event_id}"):
            spent[conversion.campaign_id] += prices[conversion.campaign_id]
            charged += 1
    for campaign_id, micros in spent.items():
        await counters.record_spend(campaign_id=campaign_id, micros=micros)
    return charged


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
                html=(
                    f'<div style="width:300px;height:250px;background-color:#{colour};'
                    f'color:#fff;font:20px sans-serif;padding:24px;box-sizing:border-box">'
                    f"<strong>{name}</strong><p>Winter collection, demo ad</p></div>"
                ),
            )
    placements_publish(placements=[placement])
    campaigns_publish(campaigns=Campaign.objects.filter(advertiser=advertiser))
    return placement
