"""Publishing: turns authored ads (PostgreSQL) into delivery documents (MongoDB) and tells every
web process, through the channel layer, to refresh its snapshot (ads.snapshot).

Called after every save in the admin (ads.admin), by bulk pause/resume, and by
``python manage.py republish``, which rebuilds both collections from PostgreSQL (also what the
embedded profile does at start, its document store living in memory).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from ads.delivery import Creative, Limits, LiveAd, PlacementSlot, Pricing, Targeting
from ads.documents import DeliveryAdDocument, DeliveryPlacementDocument
from ads.models import (
    Ad,
    AdStatus,
    Campaign,
    CampaignStatus,
    CreativeKind,
    Placement,
    to_micros,
)
from naboria import mongo

logger = logging.getLogger(__name__)
CHANGES_GROUP = "ads-delivery-changes"


def live_ad(ad: Ad, *, now: datetime | None = None) -> LiveAd | None:
    """What delivery needs of the ad, or None when it cannot run (paused, campaign not active,
    campaign over)."""
    campaign = ad.campaign
    moment = now or timezone.now()
    if ad.status != AdStatus.ACTIVE or campaign.status != CampaignStatus.ACTIVE:
        return None
    if campaign.ends_at is not None and campaign.ends_at <= moment:
        return None
    organization_id = campaign.advertiser.organization_id
    # The models refuse a placement of another organization; this keeps a link made around
    # them (raw SQL, an old row) from serving one organization's ads on another's site.
    placements = [
        placement
        for placement in campaign.placements.all()
        if placement.site.organization_id == organization_id
    ]
    site_ids = (
        {placement.site_id for placement in placements}
        if placements
        else set(
            Placement.objects.filter(site__organization_id=organization_id).values_list(
                "site_id", flat=True
            )
        )
    )
    return LiveAd(
        ad_id=ad.pk,
        campaign_id=campaign.pk,
        advertiser_id=campaign.advertiser_id,
        organization_id=organization_id,
        site_ids=frozenset(site_ids),
        priority=campaign.priority,
        weight=campaign.weight,
        starts_at=campaign.starts_at,
        ends_at=campaign.ends_at,
        creative=Creative(
            kind=ad.kind,
            width=ad.width,
            height=ad.height,
            click_url=ad.click_url,
            image_url=ad.image_url,
            html=ad.html,
            title=ad.title,
            text=ad.text,
            call_to_action=ad.call_to_action,
            duration_seconds=ad.duration_seconds,
            media_files=tuple(
                {
                    "url": video.url,
                    "mime_type": video.mime_type,
                    "width": video.width,
                    "height": video.height,
                    "bitrate": video.bitrate,
                }
                for video in ad.video_files.all()
            )
            if ad.kind == CreativeKind.VIDEO and not ad.is_wrapper
            else (),
            vast_tag_url=ad.vast_tag_url if ad.is_wrapper else "",
        ),
        targeting=Targeting(
            placement_ids=frozenset(placement.pk for placement in placements),
            countries=frozenset(campaign.target_countries),
            devices=frozenset(campaign.target_devices),
            path_patterns=tuple(campaign.target_paths),
            weekdays=frozenset(campaign.target_weekdays),
            hours=frozenset(campaign.target_hours),
        ),
        limits=Limits(
            impression_goal=campaign.impression_goal,
            daily_cap=campaign.daily_cap,
            lifetime_cap=campaign.lifetime_cap,
            frequency_cap=campaign.frequency_cap,
            frequency_period_seconds=campaign.frequency_period,
            pacing=campaign.pacing,
            budget_micros=to_micros(campaign.budget),
            daily_budget_micros=to_micros(campaign.daily_budget),
        ),
        pricing=Pricing(model=campaign.pricing, rate_micros=to_micros(campaign.rate)),
        version=ad.version,
    )


def placement_slot(placement: Placement) -> PlacementSlot:
    return PlacementSlot(
        placement_id=placement.pk,
        site_id=placement.site_id,
        key=placement.key,
        sizes=frozenset(placement.sizes),
        formats=frozenset(placement.formats),
        rotation_seconds=placement.rotation_seconds,
        timezone=placement.site.timezone,
        site_public_id=placement.site.public_id,
    )


def _slot_document(slot: PlacementSlot) -> dict[str, object]:
    return {
        "placement_id": slot.placement_id,
        "site_id": slot.site_id,
        "key": slot.key,
        "sizes": sorted(slot.sizes),
        "formats": sorted(slot.formats),
        "rotation_seconds": slot.rotation_seconds,
        "timezone": slot.timezone,
        "site_public_id": slot.site_public_id,
    }


def ads_publish(*, ads: Iterable[Ad]) -> int:
    """Publish (or withdraw) these ads once the transaction that changed them commits; the
    number of live ones."""
    mongo.connect()
    live = 0
    ad_ids = []
    for ad in ads:
        Ad.objects.filter(pk=ad.pk).update(version=ad.version + 1)
        ad.version += 1
        ad_ids.append(ad.pk)
        published = live_ad(ad)
        if published is None:
            DeliveryAdDocument.objects(ad_id=ad.pk).delete()
            continue
        live += 1
        DeliveryAdDocument(
            ad_id=ad.pk, organization_id=published.organization_id, body=published.to_document()
        ).save()
    transaction.on_commit(lambda: notify_delivery_changed(ad_ids=ad_ids))
    return live


def campaigns_publish(*, campaigns: Iterable[Campaign]) -> int:
    ads = (
        Ad.objects.filter(campaign__in=list(campaigns))
        .select_related("campaign__advertiser")
        .prefetch_related("campaign__placements__site", "video_files")
    )
    return ads_publish(ads=ads)


def placements_publish(*, placements: Iterable[Placement]) -> None:
    mongo.connect()
    for placement in placements:
        slot = placement_slot(placement)
        DeliveryPlacementDocument(
            placement_id=slot.placement_id, key=slot.key, body=_slot_document(slot)
        ).save()
    transaction.on_commit(lambda: notify_delivery_changed(ad_ids=[]))


def placement_withdraw(*, placement_id: int) -> None:
    mongo.connect()
    DeliveryPlacementDocument.objects(placement_id=placement_id).delete()
    transaction.on_commit(lambda: notify_delivery_changed(ad_ids=[]))


def republish_all() -> tuple[int, int]:
    """Rebuild both collections from PostgreSQL: (live ads, placements)."""
    mongo.connect()
    DeliveryAdDocument.objects.delete()
    DeliveryPlacementDocument.objects.delete()
    placements = list(Placement.objects.select_related("site"))
    placements_publish(placements=placements)
    live = campaigns_publish(campaigns=Campaign.objects.filter(status=CampaignStatus.ACTIVE))
    return live, len(placements)


def notify_delivery_changed(*, ad_ids: list[int]) -> None:
    """Tell every web process to reload its snapshot (and its open streams to re-decide)."""
    try:
        async_to_sync(get_channel_layer().group_send)(
            CHANGES_GROUP, {"type": "delivery.changed", "ad_ids": ad_ids}
        )
    except Exception:
        # Processes still refresh on their own within ads.snapshot.REFRESH_SECONDS.
        logger.warning("delivery change not broadcast", exc_info=True)


def ads_withdraw(*, ad_ids: list[int]) -> None:
    """Remove deleted ads from delivery."""
    mongo.connect()
    DeliveryAdDocument.objects(ad_id__in=ad_ids).delete()
    transaction.on_commit(lambda: notify_delivery_changed(ad_ids=ad_ids))
