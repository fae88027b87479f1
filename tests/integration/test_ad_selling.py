"""Selling basics (issue 14/7), through the real endpoints, counters and stored rows: a money
budget stops a CPM campaign after the impressions it paid for and a CPC campaign after the
clicks, bots never spend, CPA campaigns are charged for their attributed conversions by the
periodic job, and the revenue report matches numbers computed by hand from a small data set
(conversions after a click inside and outside its window, a view-through, the last touch
among campaigns, bots)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest
from asgiref.sync import async_to_sync
from rest_framework.test import APIClient

from ads import counters
from ads.counters import get_counters
from ads.models import Ad, Advertiser, Campaign, CampaignStatus, CreativeKind, Placement
from analytics.reports.ad_revenue import ad_revenue
from analytics.reports.query import Period, ReportQuery
from events.rows import AdRow, PageRow, clickhouse_time, encoder
from ingest.storage import insert_rows
from naboria.celery import app
from naboria.periodic_jobs import PERIODIC_JOBS
from sites.services import api_token_create
from tests.factories import published_campaign
from tests.tracking_client import TrackingClient

pytestmark = [
    pytest.mark.mongodb,
    pytest.mark.clickhouse,
    pytest.mark.django_db,
    pytest.mark.usefixtures("clickhouse_schema", "direct_path", "empty_delivery"),
]
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
PARIS = "Europe/Paris"


@pytest.fixture(autouse=True)
def fresh_totals(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every decision reads the counters (a process otherwise reuses them for a second)."""
    monkeypatch.setattr(counters, "CAMPAIGN_DELIVERY_CACHE_SECONDS", -1.0)


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def listed(client: TrackingClient, placement: Placement) -> list[dict[str, Any]]:
    answer = client.get(f"/ads/listing?placement={placement.key}")
    assert answer.status_code == 200, answer.content
    ads: list[dict[str, Any]] = answer.json()["ads"]
    return ads


def show(client: TrackingClient, item: dict[str, Any], **meta: str) -> None:
    body = {"type": "impression", "impression_token": item["impression_token"]}
    answer = client.post("/ad-event", json.dumps(body), content_type="text/plain", **meta)
    assert answer.status_code == 200, answer.content


def spent(campaign: Campaign) -> int:
    return async_to_sync(get_counters().campaign_delivery)([campaign.pk])[campaign.pk].spent


def test_a_cpm_campaign_stops_once_its_spend_reaches_its_budget(ads_client, site):
    # 10.000 per 1,000 impressions: 0.01 an impression, so 0.03 buys three.
    placement, campaign = published_campaign(
        site, ads=1, pricing="cpm", rate=Decimal(10), budget=Decimal("0.03"), pacing="asap"
    )
    for _ in range(4):
        (item,) = listed(ads_client, placement)
        show(ads_client, item, HTTP_USER_AGENT=GOOGLEBOT)  # stored, spends nothing
    assert spent(campaign) == 0
    served = 0
    while items := listed(ads_client, placement):
        show(ads_client, items[0])
        show(ads_client, items[0])  # a retry is counted (and spends) once
        served += 1
        assert served <= 3, "served past its budget"
    assert served == 3
    assert spent(campaign) == 30_000
    assert async_to_sync(get_counters().campaign_delivery)([campaign.pk])[campaign.pk].today == 3


def test_a_cpc_campaign_stops_once_its_clicks_spend_its_budget(ads_client, site):
    placement, campaign = published_campaign(
        site, ads=1, pricing="cpc", rate=Decimal("0.5"), budget=Decimal(1), pacing="asap"
    )
    (item,) = listed(ads_client, placement)
    show(ads_client, item)
    click = local(item["click_url"])
    assert ads_client.get(click, HTTP_USER_AGENT=GOOGLEBOT).status_code == 302
    assert spent(campaign) == 0  # impressions and bots' clicks spend nothing
    clicks = 0
    while items := listed(ads_client, placement):
        show(ads_client, items[0])
        for _ in range(2):  # clicked twice: one click per impression is charged
            assert ads_client.get(local(items[0]["click_url"])).status_code == 302
        clicks += 1
        assert clicks <= 2, "served past its budget"
    assert clicks == 2
    assert spent(campaign) == 1_000_000


# The hand-made data set of the revenue report: moments are UTC; the site is in Paris.


def at(text: str) -> str:
    moment = datetime.fromisoformat(text).replace(tzinfo=UTC)
    return clickhouse_time(int(moment.timestamp() * 1000))


def touch(
    site: str, moment: str, visitor: str, kind: str, ad: Ad, impression: str, bot: int = 0
) -> bytes:
    return encoder.encode(
        AdRow(
            event_id=str(uuid.uuid4()),
            impression_id=impression,
            site_id=site,
            timestamp=at(moment),
            received_at=at(moment),
            event_type=kind,
            visitor_id=visitor,
            consent_state="none",
            campaign_id=ad.campaign_id,
            ad_id=ad.pk,
            retention_days=400,
            is_bot=bot,
        )
    )


def page_event(
    site: str, moment: str, visitor: str, name: str = "Signup", bot: int = 0, path: str = "/"
) -> bytes:
    return encoder.encode(
        PageRow(
            event_id=str(uuid.uuid4()),
            site_id=site,
            timestamp=at(moment),
            received_at=at(moment),
            event_type="event" if name else "pageview",
            event_name=name,
            visitor_id=visitor,
            consent_state="none",
            pathname=path,
            url=f"https://shop.example{path}",
            retention_days=400,
            is_bot=bot,
        )
    )


def campaign_with_ads(advertiser: Advertiser, name: str, ads: int, **fields: Any) -> list[Ad]:
    campaign = Campaign.objects.create(
        advertiser=advertiser, name=name, status=CampaignStatus.ACTIVE, **fields
    )
    return [
        Ad.objects.create(
            campaign=campaign,
            name=f"{name}{number}",
            kind=CreativeKind.IMAGE,
            width=300,
            height=250,
            image_url="https://cdn.example/a.png",
            click_url="https://shop.example/",
        )
        for number in range(1, ads + 1)
    ]


def metrics(impressions, clicks, post_click, post_view, revenue_micros) -> dict[str, Any]:
    """The metrics of a row from its counts."""
    return {
        "impressions": impressions,
        "clicks": clicks,
        "conversions": post_click + post_view,
        "post_click_conversions": post_click,
        "post_view_conversions": post_view,
        "revenue": revenue_micros / 1_000_000,
        "revenue_micros": revenue_micros,
        "ecpm": round(revenue_micros / 1_000_000 / impressions * 1000, 4) if impressions else 0.0,
    }


def test_revenue_ecpm_and_attributed_conversions_match_the_hand_count(site):
    site.timezone = PARIS
    site.save()
    s = site.public_id
    Placement.objects.create(site=site, name="Sidebar")  # the flat campaign runs on it
    advertiser = Advertiser.objects.create(organization=site.organization, name="Outdoor")
    goal = {"goal_event": "Signup", "post_click_days": 7, "post_view_days": 1}
    a1, a2 = campaign_with_ads(advertiser, "A", 2, pricing="cpm", rate=Decimal(2), **goal)
    (b1,) = campaign_with_ads(advertiser, "B", 1, pricing="cpc", rate=Decimal("0.5"), **goal)
    (c1,) = campaign_with_ads(advertiser, "C", 1, pricing="cpa", rate=Decimal(10), **goal)
    d1, d2 = campaign_with_ads(
        advertiser,
        "D",
        2,
        pricing="flat",
        flat_fee=Decimal(300),
        # November in Paris: 30 days.
        starts_at=datetime(2026, 10, 31, 23, tzinfo=UTC),
        ends_at=datetime(2026, 11, 30, 23, tzinfo=UTC),
    )
    insert_rows(
        "ad_events",
        [
            # v1 saw A, clicked B, then clicked C, then signed up: C's (the last click).
            touch(s, "2026-11-20 08:00:00", "v1", "impression", a1, "a-v1"),
            touch(s, "2026-11-20 09:00:00", "v1", "impression", b1, "b-v1"),
            touch(s, "2026-11-20 09:00:10", "v1", "click", b1, "b-v1"),
            touch(s, "2026-11-20 11:00:00", "v1", "impression", c1, "c-v1"),
            touch(s, "2026-11-20 11:00:10", "v1", "click", c1, "c-v1"),
            # v2 saw A 36 hours before signing up: outside its 1-day post-view window.
            touch(s, "2026-11-20 08:00:00", "v2", "impression", a1, "a-v2"),
            # v3 saw A an hour before: a view-through.
            touch(s, "2026-11-21 08:00:00", "v3", "impression", a1, "a-v3"),
            touch(s, "2026-11-21 08:00:00", "v4", "impression", a2, "a-v4"),
            touch(s, "2026-11-20 10:00:00", "crawler", "impression", a1, "a-bot1", bot=1),
            touch(s, "2026-11-20 10:00:00", "crawler", "impression", a1, "a-bot2", bot=1),
            # v5 clicked B, then saw C: the click wins over the later view.
            touch(s, "2026-11-21 09:00:00", "v5", "impression", b1, "b-v5"),
            touch(s, "2026-11-21 09:00:10", "v5", "click", b1, "b-v5"),
            touch(s, "2026-11-21 10:00:00", "v5", "impression", c1, "c-v5"),
            touch(s, "2026-11-21 09:30:00", "crawler", "click", b1, "b-bot", bot=1),
            # v6 clicked C a day before signing up (inside its 7 days).
            touch(s, "2026-11-20 09:59:00", "v6", "impression", c1, "c-v6"),
            touch(s, "2026-11-20 10:00:00", "v6", "click", c1, "c-v6"),
            # v7 saw C six hours before: a view-through.
            touch(s, "2026-11-20 09:00:00", "v7", "impression", c1, "c-v7"),
            # v8 clicked C ten days before: outside its window, and so was the view.
            touch(s, "2026-11-10 10:00:00", "v8", "impression", c1, "c-v8"),
            touch(s, "2026-11-10 10:00:10", "v8", "click", c1, "c-v8"),
            # v9's only touch was a bot's; v10's sign-up was a bot's.
            touch(s, "2026-11-20 10:00:00", "v9", "impression", c1, "c-v9", bot=1),
            touch(s, "2026-11-20 10:00:00", "v10", "impression", c1, "c-v10"),
            # v11 consented: the page reported the impression with the browser id, the click
            # redirect stored the day's cookieless id.
            touch(s, "2026-11-20 13:00:00", "bid-11", "impression", c1, "c-v11"),
            touch(s, "2026-11-20 13:00:10", "anon-11", "click", c1, "c-v11"),
            # v12 clicked C before the period, two days before signing up in it.
            touch(s, "2026-11-18 10:00:00", "v12", "impression", c1, "c-v12"),
            touch(s, "2026-11-18 10:00:10", "v12", "click", c1, "c-v12"),
            # D: Nov 20 00:30 in Paris is in the period, Nov 23 00:30 is not.
            touch(s, "2026-11-19 23:30:00", "v20", "impression", d1, "d-1"),
            touch(s, "2026-11-20 12:00:00", "v21", "impression", d1, "d-2"),
            touch(s, "2026-11-21 12:00:00", "v22", "impression", d1, "d-3"),
            touch(s, "2026-11-22 12:00:00", "v23", "impression", d2, "d-4"),
            touch(s, "2026-11-22 23:30:00", "v24", "impression", d2, "d-5"),
        ],
    )
    insert_rows(
        "page_events",
        [
            page_event(s, "2026-11-20 12:00:00", "v1"),
            page_event(s, "2026-11-20 12:30:00", "v1", name="Purchase"),  # not a goal
            page_event(s, "2026-11-21 20:00:00", "v2"),
            page_event(s, "2026-11-21 09:00:00", "v3"),
            page_event(s, "2026-11-21 11:00:00", "v5"),
            page_event(s, "2026-11-21 10:00:00", "v6"),
            page_event(s, "2026-11-23 12:00:00", "v6"),  # after the period (Paris)
            page_event(s, "2026-11-20 15:00:00", "v7"),
            page_event(s, "2026-11-20 15:00:00", "v7", name="", path="/thanks"),  # a pageview
            page_event(s, "2026-11-20 12:00:00", "v8"),
            page_event(s, "2026-11-20 11:00:00", "v9"),
            page_event(s, "2026-11-20 11:00:00", "v10", bot=1),
            page_event(s, "2026-11-22 13:00:00", "bid-11"),
            page_event(s, "2026-11-20 10:00:00", "v12"),
        ],
    )
    query = ReportQuery(
        site_id=s, period=Period(date(2026, 11, 20), date(2026, 11, 22), PARIS), include_bots=True
    )
    answer = ad_revenue(query)

    def campaign(pricing: str, rate: str, fee: str, counts: tuple, ads: list) -> Any:
        """A campaign's row: its counts and its ads' (impressions, clicks, post-click and
        post-view conversions, revenue in micro-units)."""
        first = ads[0][0]
        return {
            "campaign": first.campaign_id,
            "name": first.campaign.name,
            "pricing": pricing,
            "currency": "EUR",
            "rate": rate,
            "flat_fee": fee,
            **metrics(*counts),
            "ads": [{"ad": ad.pk, "name": ad.name, **metrics(*values)} for ad, values in ads],
        }

    # C: CPA at 10: v1, v6, v11, v12 after a click, v7 after a view: 5 x 10 = 50.
    expected_c = campaign(
        "cpa", "10.000", "0.00", (6, 3, 4, 1, 50_000_000), [(c1, (6, 3, 4, 1, 50_000_000))]
    )
    # D: flat 300 over the 30 days of November, 3 of them in the period: 30, split 3:1.
    expected_d = campaign(
        "flat",
        "0.000",
        "300.00",
        (4, 0, 0, 0, 30_000_000),
        [(d1, (3, 0, 0, 0, 22_500_000)), (d2, (1, 0, 0, 0, 7_500_000))],
    )
    # B: CPC at 0.5: 2 clicks (the bot's is left out) = 1; v5's conversion is B's.
    expected_b = campaign(
        "cpc", "0.500", "0.00", (2, 2, 1, 0, 1_000_000), [(b1, (2, 2, 1, 0, 1_000_000))]
    )
    # A: CPM at 2: 4 impressions (not the bots' 2) x 2 / 1,000 = 0.008; v3's view-through.
    expected_a = campaign(
        "cpm",
        "2.000",
        "0.00",
        (4, 0, 0, 1, 8_000),
        [(a1, (3, 0, 0, 1, 6_000)), (a2, (1, 0, 0, 0, 2_000))],
    )
    assert answer["results"] == [expected_c, expected_d, expected_b, expected_a]
    # eCPM = revenue / impressions x 1,000: 50 / 6, 30 / 4, 1 / 2, 0.008 / 4 (x 1,000).
    assert [row["ecpm"] for row in answer["results"]] == [8333.3333, 7500.0, 500.0, 2.0]
    assert answer["totals"] == [{"currency": "EUR", **metrics(16, 5, 5, 2, 81_008_000)}]
    assert answer["totals"][0]["ecpm"] == 5063.0
    # The same numbers through the REST API, to the organization's token only.
    _, token = api_token_create(organization=site.organization, name="revenue")
    path = f"/api/v1/sites/{s}/reports/ad-revenue?from=2026-11-20&to=2026-11-22"
    served = APIClient(HTTP_AUTHORIZATION=f"Bearer {token}").get(path)
    assert served.status_code == 200
    assert json.loads(json.dumps(answer["results"])) == served.json()["results"]


def test_the_periodic_job_charges_cpa_campaigns_for_their_attributed_conversions(ads_client, site):
    placement, campaign = published_campaign(
        site,
        ads=1,
        pricing="cpa",
        rate=Decimal(4),
        budget=Decimal(8),  # two conversions
        pacing="asap",
        goal_event="Signup",
    )
    (ad,) = campaign.ads.all()
    (rival,) = campaign_with_ads(
        campaign.advertiser, "Rival", 1, pricing="cpc", rate=Decimal(1), goal_event="Signup"
    )
    # A goal without an event: a view of the page.
    (thanks,) = campaign_with_ads(
        campaign.advertiser, "Thanks", 1, pricing="cpa", rate=Decimal(2), goal_path="/thanks"
    )
    s = site.public_id
    now = datetime.now(UTC)

    def ago(minutes: int) -> str:
        return (now - timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M:%S")

    insert_rows(
        "ad_events",
        [
            touch(s, ago(30), "v1", "impression", ad, "i1"),
            touch(s, ago(30), "v1", "click", ad, "i1"),
            touch(s, ago(30), "v2", "impression", ad, "i2"),
            touch(s, ago(40), "v3", "click", ad, "i3"),
            touch(s, ago(35), "v3", "click", rival, "i4"),  # v3's last touch: not charged
            touch(s, ago(40), "v4", "click", ad, "i5"),
            touch(s, ago(30), "v5", "impression", thanks, "i6"),
            touch(s, ago(30), "v6", "impression", thanks, "i7"),
        ],
    )
    insert_rows(
        "page_events",
        [
            page_event(s, ago(20), "v1"),
            page_event(s, ago(10), "v2"),  # a view-through
            page_event(s, ago(5), "v3"),
            page_event(s, ago(5), "v4", bot=1),
            page_event(s, ago(25), "v5", name="", path="/thanks"),
            page_event(s, ago(25), "v6", name="Signup", path="/thanks"),  # not a page view
        ],
    )
    assert listed(ads_client, placement)  # under its budget
    app.loader.import_default_modules()  # the apps' tasks, as a worker or the embedded beat
    job = app.tasks[PERIODIC_JOBS["count-ad-conversions"]["task"]]
    assert job.apply().get() == 3
    assert spent(campaign) == 8_000_000
    assert spent(thanks.campaign) == 2_000_000
    assert spent(rival.campaign) == 0  # CPC: its clicks spend, not its conversions
    assert listed(ads_client, placement) == []  # over its budget
    assert job.apply().get() == 0  # each conversion is charged once
    assert spent(campaign) == 8_000_000
