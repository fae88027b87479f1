"""factory_boy factories for the models of the test suite."""

from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth import get_user_model

from ads.models import (
    Ad,
    Advertiser,
    Campaign,
    CampaignStatus,
    CreativeKind,
    Placement,
    VideoFile,
)
from sites.models import Organization, Site, SiteSecret


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password("correct horse battery staple")


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Organization {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site
        skip_postgeneration_save = True

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Site {n}")
    allowed_domains = factory.LazyFunction(lambda: ["example.com"])
    # Sites of the suite trust the consent their pages send (a CMP of their own) unless a test
    # turns Naboria's banner on, which makes the server check claims against recorded decisions.
    consent_banner_enabled = False
    secret = factory.RelatedFactory(
        "tests.factories.SiteSecretFactory", factory_related_name="site"
    )


class SiteSecretFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SiteSecret


def published_campaign(site: Any, *, ads: int = 2, **fields: Any) -> tuple[Placement, Campaign]:
    """A placement on the site and an active campaign of image ads running on it, published."""
    from ads import snapshot
    from ads.publishing import campaigns_publish, placements_publish

    placement = Placement.objects.create(site=site, name="Sidebar", sizes=["300x250"])
    advertiser = Advertiser.objects.create(organization=site.organization, name="Outdoor")
    campaign = Campaign.objects.create(
        advertiser=advertiser, name="Winter", status=CampaignStatus.ACTIVE, **fields
    )
    campaign.placements.add(placement)
    for number in range(ads):
        Ad.objects.create(
            campaign=campaign,
            name=f"Ad {number}",
            kind=CreativeKind.IMAGE,
            width=300,
            height=250,
            image_url=f"https://cdn.example/{number}.png",
            click_url=f"https://outdoor.example/landing?ad={number}&src=naboria",
        )
    placements_publish(placements=[placement])
    campaigns_publish(campaigns=[campaign])
    snapshot.load()  # this process serves them at once
    return placement, campaign


def published_video_campaign(
    site: Any, *, duration_seconds: int = 20
) -> tuple[Placement, Campaign]:
    """A video placement on the site and an active campaign of one video ad (an MP4 file),
    published."""
    from ads import snapshot
    from ads.publishing import campaigns_publish, placements_publish

    placement, campaign = published_campaign(site, ads=0)
    placement.formats = ["video"]
    placement.save()
    video = Ad.objects.create(
        campaign=campaign,
        name="Spot",
        kind=CreativeKind.VIDEO,
        title="Winter spot",
        duration_seconds=duration_seconds,
        click_url="https://outdoor.example/video",
    )
    VideoFile.objects.create(ad=video, url="https://cdn.example/spot.mp4", width=640, height=360)
    placements_publish(placements=[placement])
    campaigns_publish(campaigns=[campaign])
    snapshot.load()
    return placement, campaign


def campaign_form_data(
    advertiser: Advertiser, placements: list[Placement], name: str, **extra: Any
) -> dict[str, Any]:
    """What the admin's campaign form posts for an active campaign with defaults everywhere
    (no ads inline unless ``extra`` adds them)."""
    return {
        "advertiser": advertiser.pk,
        "name": name,
        "status": "active",
        "starts_at_0": "2026-01-01",
        "starts_at_1": "00:00:00",
        "priority": 5,
        "weight": 10,
        "pacing": "asap",
        "impression_goal": 0,
        "daily_cap": 0,
        "lifetime_cap": 0,
        "frequency_cap": 0,
        "frequency_period": 86400,
        "pricing": "house",
        "currency": "EUR",
        "rate": "0",
        "flat_fee": "0",
        "budget": "0",
        "daily_budget": "0",
        "post_click_days": 30,
        "post_view_days": 1,
        "placements": [placement.pk for placement in placements],
        "target_countries": "[]",
        "target_devices": "[]",
        "target_paths": "[]",
        "target_weekdays": "[]",
        "target_hours": "[]",
        "ads-TOTAL_FORMS": 0,
        "ads-INITIAL_FORMS": 0,
        **extra,
    }
