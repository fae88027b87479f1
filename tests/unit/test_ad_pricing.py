"""Selling basics (issue 14/7): a campaign's pricing and budgets are validated with messages
that say what to fix, published to delivery in micro-units, counted as spend by both counter
backends alike, and a campaign over its budget (or ahead of its even pace) is not served."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import Client

from ads import counters
from ads.counters import RedisCounters, SqliteCounters
from ads.delivery import CampaignDelivery, Limits, LiveAd, Pricing
from ads.documents import DeliveryAdDocument
from ads.models import Advertiser, Campaign, Pacing, Placement, PricingModel, to_micros
from ads.snapshot import Snapshot
from tests.factories import UserFactory, campaign_form_data
from tests.unit.test_decisioning import NOW, SIX_AM, make_ad, make_context, reason_for

START = NOW - timedelta(days=1)


def errors_of(**fields: Any) -> dict[str, list[str]]:
    """The validation errors of a campaign with these fields (an untouched one has none)."""
    campaign = Campaign(name="Winter", starts_at=START, **fields)
    try:
        campaign.clean()
    except ValidationError as error:
        return error.message_dict
    return {}


def test_a_campaign_that_is_not_sold_needs_no_pricing():
    assert errors_of() == {}
    assert errors_of(pricing=PricingModel.HOUSE, goal_event="Signup") == {}


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"pricing": "cpm"}, "rate", "A CPM campaign needs a rate (per 1,000 impressions)."),
        ({"pricing": "cpc"}, "rate", "A CPC campaign needs a rate (per click)."),
        (
            {"pricing": "cpa", "goal_event": "Signup"},
            "rate",
            "A CPA campaign needs a rate (per conversion).",
        ),
        (
            {"pricing": "cpa", "rate": Decimal(5)},
            "goal_event",
            "A CPA campaign needs a goal: a custom event, a page path, or both.",
        ),
        (
            {
                "pricing": "cpa",
                "rate": Decimal(5),
                "goal_path": "/thanks",
                "post_click_days": 0,
                "post_view_days": 0,
            },
            "post_click_days",
            "A CPA campaign needs a post-click or a post-view window: without either nothing "
            "converts.",
        ),
        ({"pricing": "flat", "ends_at": NOW}, "flat_fee", "A flat-fee campaign needs a fee."),
        (
            {"pricing": "flat", "flat_fee": Decimal(300)},
            "ends_at",
            "A flat-fee campaign needs an end date: its fee is spread over its days.",
        ),
        (
            {"pricing": "flat", "flat_fee": Decimal(300), "ends_at": NOW, "rate": Decimal(2)},
            "rate",
            "Only CPM, CPC and CPA campaigns have a rate.",
        ),
        (
            {"pricing": "flat", "flat_fee": 300, "ends_at": NOW, "daily_budget": Decimal(10)},
            "daily_budget",
            "A flat-fee campaign spends nothing per impression or click: cap it in impressions, "
            "not in money.",
        ),
        (
            {"pricing": "cpm", "rate": Decimal(2), "flat_fee": Decimal(300)},
            "flat_fee",
            "Only a flat-fee campaign has a fee.",
        ),
        (
            {"budget": Decimal(100), "pacing": "asap"},
            "budget",
            "A house campaign is not sold: it has no budget in money.",
        ),
        (
            {"pricing": "cpc", "rate": 1, "budget": 100, "daily_budget": 200, "pacing": "asap"},
            "daily_budget",
            "The daily budget cannot exceed the budget.",
        ),
        (
            {"pricing": "cpc", "rate": Decimal(1), "budget": Decimal(100)},
            "ends_at",
            "Even pacing of a budget needs an end date.",
        ),
        (
            {"pricing": "cpa", "rate": 1, "goal_event": "Signup", "goal_path": "thanks"},
            "goal_path",
            'A goal page path starts with "/", e.g. "/thanks".',
        ),
    ],
)
def test_pricing_errors_say_what_to_fix(fields, field, message):
    assert errors_of(**fields).get(field) == [message]


def test_valid_pricings():
    assert errors_of(pricing="cpm", rate=Decimal("2.5"), daily_budget=Decimal(50)) == {}
    assert errors_of(pricing="cpc", rate=Decimal("0.4"), budget=100, pacing=Pacing.ASAP) == {}
    assert errors_of(pricing="cpa", rate=12, goal_path="/thanks", post_view_days=0) == {}
    assert errors_of(pricing="flat", flat_fee=Decimal(300), ends_at=NOW) == {}


def test_money_is_whole_micro_units_and_a_cpm_impression_costs_a_thousandth_of_the_rate():
    assert to_micros(Decimal("2.345")) == 2_345_000
    assert Pricing(model="cpm", rate_micros=2_345_000).impression_micros == 2_345
    assert Pricing(model="cpm", rate_micros=2_345_000).click_micros == 0
    assert Pricing(model="cpc", rate_micros=400_000).click_micros == 400_000
    assert Pricing(model="cpc", rate_micros=400_000).impression_micros == 0
    assert Pricing(model="cpa", rate_micros=9_000_000).event_micros == 9_000_000


@pytest.mark.parametrize(
    ("limits", "delivery", "expected"),
    [
        (Limits(budget_micros=1000, pacing="asap"), CampaignDelivery(spent=999), None),
        (
            Limits(budget_micros=1000, pacing="asap"),
            CampaignDelivery(spent=1000),
            "over its budget",
        ),
        (Limits(daily_budget_micros=500, pacing="asap"), CampaignDelivery(spent_today=499), None),
        (
            Limits(daily_budget_micros=500, pacing="asap"),
            CampaignDelivery(spent_today=500, spent=500),
            "over its daily budget",
        ),
        # Spend of another day counts toward the budget, not the daily budget.
        (Limits(daily_budget_micros=500, pacing="asap"), CampaignDelivery(spent=10**9), None),
    ],
)
def test_a_campaign_over_its_budget_is_not_served(limits, delivery, expected):
    assert reason_for(make_ad(limits=limits), delivery=delivery) == expected


def test_even_pacing_spreads_a_daily_budget_over_the_day():
    # At 06:00 UTC a quarter of the day has passed: 25 % of 100,000 plus a 2 % margin.
    six_am = make_context(now=SIX_AM)
    ad = make_ad(
        limits=Limits(daily_budget_micros=100_000), pricing=Pricing("cpc", rate_micros=1_000)
    )
    assert reason_for(ad, context=six_am, delivery=CampaignDelivery(spent_today=26_999)) is None
    assert reason_for(ad, context=six_am, delivery=CampaignDelivery(spent_today=27_000)) == (
        "pacing"
    )
    # The margin is at least the price of one click: a dear click is not held back at once.
    dear = make_ad(
        limits=Limits(daily_budget_micros=100_000), pricing=Pricing("cpc", rate_micros=30_000)
    )
    assert reason_for(dear, context=six_am, delivery=CampaignDelivery(spent_today=54_999)) is None
    assert reason_for(dear, context=six_am, delivery=CampaignDelivery(spent_today=55_000)) == (
        "pacing"
    )


def test_even_pacing_spreads_a_budget_over_the_flight():
    ad = make_ad(
        starts_at=NOW - timedelta(days=1),
        ends_at=NOW + timedelta(days=3),
        limits=Limits(budget_micros=1_000_000),
        pricing=Pricing("cpm", rate_micros=2_000_000),
    )
    # A quarter of the flight: 250,000 plus a 1 % margin.
    assert reason_for(ad, delivery=CampaignDelivery(spent=259_999)) is None
    assert reason_for(ad, delivery=CampaignDelivery(spent=260_000)) == "pacing"
    asap = make_ad(
        starts_at=NOW - timedelta(days=1),
        ends_at=NOW + timedelta(days=3),
        limits=Limits(budget_micros=1_000_000, pacing="asap"),
    )
    assert reason_for(asap, delivery=CampaignDelivery(spent=999_999)) is None


def test_a_published_ad_round_trips_its_pricing_and_budgets():
    ad = make_ad(
        limits=Limits(budget_micros=5_000_000, daily_budget_micros=1_000_000),
        pricing=Pricing("cpc", rate_micros=250_000),
    )
    assert LiveAd.from_document(ad.to_document()) == ad
    # Documents published before pricing existed: not sold, no budget.
    old = ad.to_document()
    del old["pricing"], old["limits"]["budget_micros"], old["limits"]["daily_budget_micros"]
    assert LiveAd.from_document(old).pricing == Pricing()
    assert LiveAd.from_document(old).limits.budget_micros == 0


def sqlite_counters(tmp_path: Path) -> SqliteCounters:
    return SqliteCounters(tmp_path / "counters.sqlite3")


def redis_counters(tmp_path: Path) -> RedisCounters:
    if not settings.REDIS_URL:
        pytest.skip("redis is not configured (run the suite with `make test`)")
    return RedisCounters(settings.REDIS_URL)


@pytest.mark.parametrize("backend", [sqlite_counters, redis_counters])
def test_both_counters_add_spend_per_campaign_today_and_in_all(backend, tmp_path, monkeypatch):
    store = backend(tmp_path)
    campaign = 10**12 + uuid.uuid4().int % 10**12  # keys no other test wrote
    now = 1_800_000_000.0
    monkeypatch.setattr(counters.time, "time", lambda: now)

    async def spend() -> None:
        await store.record_impression(
            campaign_id=campaign, visitor_id="v", period_seconds=0, spend_micros=2_500
        )
        await store.record_spend(campaign_id=campaign, micros=400_000)

    async_to_sync(spend)()
    today = async_to_sync(store.campaign_delivery)([campaign])[campaign]
    assert today == CampaignDelivery(today=1, lifetime=1, spent_today=402_500, spent=402_500)
    monkeypatch.setattr(counters.time, "time", lambda: now + counters.DAY_SECONDS)
    async_to_sync(store.record_spend)(campaign_id=campaign, micros=1)
    tomorrow = async_to_sync(store.campaign_delivery)([campaign])[campaign]
    assert tomorrow == CampaignDelivery(today=0, lifetime=1, spent_today=1, spent=402_501)


def test_count_impression_spends_a_cpm_campaigns_rate_per_thousand(tmp_path, monkeypatch):
    store = sqlite_counters(tmp_path)
    monkeypatch.setattr(counters, "get_counters", lambda: store)
    cpm = make_ad(1, campaign_id=7, pricing=Pricing("cpm", rate_micros=3_000_000))
    cpc = make_ad(2, campaign_id=8, pricing=Pricing("cpc", rate_micros=500_000))
    published = Snapshot(ads_by_site={1: (cpm, cpc)}, loaded_at=1.0, generation=10**6)
    monkeypatch.setattr(counters, "current_if_fresh", lambda: published)
    for campaign in (7, 8, 9):  # 9: not published (any more)
        async_to_sync(counters.count_impression)(campaign_id=campaign, visitor_id="v")
    spent = async_to_sync(store.campaign_delivery)([7, 8, 9])
    assert [spent[campaign].spent for campaign in (7, 8, 9)] == [3_000, 0, 0]
    assert [spent[campaign].lifetime for campaign in (7, 8, 9)] == [1, 1, 1]
    prices = [async_to_sync(counters.click_price)(campaign_id=c) for c in (7, 8, 9)]
    assert prices == [0, 500_000, 0]


@pytest.mark.django_db
@pytest.mark.usefixtures("empty_delivery")
def test_the_admin_asks_for_a_rate_and_publishes_the_pricing(site):
    admin = UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    advertiser = Advertiser.objects.create(organization=site.organization, name="Outdoor")
    placement = Placement.objects.create(site=site, name="Sidebar")
    page = client.get("/admin/ads/campaign/add/").content.decode()
    assert "Pricing and budget" in page
    data = {
        **campaign_form_data(advertiser, [placement], "Winter"),
        "pricing": "cpc",
        "budget": "120",
        "daily_budget": "20.50",
        "goal_event": "Signup",
        "goal_path": "",
        "ads-TOTAL_FORMS": 1,
        "ads-INITIAL_FORMS": 0,
        "ads-0-name": "Boots",
        "ads-0-status": "active",
        "ads-0-kind": "image",
        "ads-0-click_url": "https://shop.example/",
        "ads-0-width": 300,
        "ads-0-height": 250,
        "ads-0-image_url": "https://cdn.example/a.png",
        "ads-0-duration_seconds": 0,
    }
    refused = client.post("/admin/ads/campaign/add/", data)
    assert refused.status_code == 200
    assert "A CPC campaign needs a rate (per click)." in refused.content.decode()
    assert not Campaign.objects.exists()
    assert client.post("/admin/ads/campaign/add/", {**data, "rate": "0.45"}).status_code == 302
    campaign = Campaign.objects.get()
    assert (campaign.rate, campaign.daily_budget) == (Decimal("0.450"), Decimal("20.50"))
    published = LiveAd.from_document(DeliveryAdDocument.objects.get().body)
    assert published.pricing == Pricing("cpc", rate_micros=450_000)
    assert (published.limits.budget_micros, published.limits.daily_budget_micros) == (
        120_000_000,
        20_500_000,
    )
