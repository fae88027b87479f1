"""The engagement reports (outbound links, file downloads, time on page and scroll depth per
page) against numbers computed by hand from a small data set, through the REST API, with a
filter, a day boundary in the site's timezone, bots, late engagement, and a second
organization; every visit computed live, and from refreshed session facts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import cast

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from analytics import session_facts
from events.rows import PageRow, clickhouse_time, encoder
from ingest.storage import insert_rows
from naboria import clickhouse
from sites.models import Site
from sites.services import api_token_create
from tests.factories import OrganizationFactory, SiteFactory

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.clickhouse,
    pytest.mark.usefixtures("clickhouse_schema"),
]
PERIOD = "from=2026-11-20&to=2026-11-21"


def event(site, moment: str, visitor: str, path: str, kind: str, **extra) -> bytes:
    at = clickhouse_time(int(datetime.fromisoformat(moment).replace(tzinfo=UTC).timestamp() * 1000))
    return encoder.encode(
        PageRow(
            event_id=str(uuid.uuid4()),
            site_id=site.public_id,
            timestamp=at,
            received_at=at,
            event_type=kind,
            visitor_id=visitor,
            consent_state="none",
            pathname=path,
            url=f"https://shop.example{path}",
            retention_days=400,
            country=extra.pop("country", "FR"),
            **extra,
        )
    )


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()


@pytest.fixture(params=["live", "refreshed"])
def shop(request: pytest.FixtureRequest):
    """A site in Paris (UTC+1 in November), the period Nov 20-21 Paris time. UTC times:

    v1  Nov 20 09:00 pageview /            engagement /  30 000 ms, scroll 50
        09:01 pageview /docs               engagement /docs  10 000 ms, scroll 100
        09:02 download https://shop.example/docs/guide.pdf
        09:03 outbound https://github.com/naboria
    v2  Nov 20 10:00 pageview / (DE)       engagement /  20 000 ms, scroll 25
        10:00 then the tab again:          engagement /  5 000 ms, scroll 75
        10:01 outbound https://github.com/naboria, 10:02 again (2 clicks, 1 visitor)
        10:03 outbound https://example.org/partner
    v3  Nov 21 22:59 pageview / (Nov 21 23:59 Paris: inside)  no engagement
        23:00 download https://shop.example/docs/guide.pdf (Nov 22 00:00 Paris: after the
        period, in a visit that started inside it, so it counts, like that visit's pageviews)
    v4  Nov 19 22:59 download .../guide.pdf (Nov 19 23:59 Paris: before the period, and in
        no visit: no pageview)
    bot Nov 20 12:00 pageview /, outbound https://github.com/naboria (excluded)

    By hand, the period, bots excluded:
    - outbound: github.com/naboria 2 visitors (v1, v2) 3 clicks; example.org/partner 1, 1
    - downloads: guide.pdf 2 visitors (v1, v3), 2 clicks
    - pages: / 3 pageviews (v1, v2, v3), 3 visitors, visible 30+20+5 = 55 s / 3 = 18.3 s,
      3 reports, scroll (50+25+75)/3 = 50.0; /docs 1 pageview, 10.0 s, scroll 100.0
    With country=DE: outbound github 1 visitor 2 clicks, example.org 1 1; no download;
      / 1 pageview, 25 s / 1 = 25.0 s, scroll (25+75)/2 = 50.0
    """
    mine = OrganizationFactory()
    site = SiteFactory(organization=mine, timezone="Europe/Paris")
    github, partner = "https://github.com/naboria", "https://example.org/partner"
    guide = "https://shop.example/docs/guide.pdf"
    de = {"country": "DE"}
    insert_rows(
        "page_events",
        [
            event(site, "2026-11-20 09:00:00", "v1", "/", "pageview"),
            event(
                site,
                "2026-11-20 09:00:40",
                "v1",
                "/",
                "engagement",
                visible_ms=30_000,
                scroll_depth=50,
            ),
            event(site, "2026-11-20 09:01:00", "v1", "/docs", "pageview"),
            event(
                site,
                "2026-11-20 09:01:20",
                "v1",
                "/docs",
                "engagement",
                visible_ms=10_000,
                scroll_depth=100,
            ),
            event(site, "2026-11-20 09:02:00", "v1", "/docs", "download", target=guide),
            event(site, "2026-11-20 09:03:00", "v1", "/docs", "outbound", target=github),
            event(site, "2026-11-20 10:00:00", "v2", "/", "pageview", **de),
            event(
                site,
                "2026-11-20 10:00:20",
                "v2",
                "/",
                "engagement",
                visible_ms=20_000,
                scroll_depth=25,
                **de,
            ),
            event(
                site,
                "2026-11-20 10:00:50",
                "v2",
                "/",
                "engagement",
                visible_ms=5_000,
                scroll_depth=75,
                **de,
            ),
            event(site, "2026-11-20 10:01:00", "v2", "/", "outbound", target=github, **de),
            event(site, "2026-11-20 10:02:00", "v2", "/", "outbound", target=github, **de),
            event(site, "2026-11-20 10:03:00", "v2", "/", "outbound", target=partner, **de),
            event(site, "2026-11-21 22:59:00", "v3", "/", "pageview"),
            event(site, "2026-11-21 23:00:00", "v3", "/", "download", target=guide),
            event(site, "2026-11-19 22:59:00", "v4", "/", "download", target=guide),
            event(site, "2026-11-20 12:00:00", "bot", "/", "pageview", is_bot=1),
            event(site, "2026-11-20 12:00:05", "bot", "/", "outbound", target=github, is_bot=1),
        ],
    )
    if request.param == "refreshed":
        session_facts.refresh()
    _, token = api_token_create(organization=mine, name="dashboard")
    return site, APIClient(HTTP_AUTHORIZATION=f"Bearer {token}")


def results(client, site, report: str, query: str = PERIOD) -> list[dict]:
    answer = client.get(f"/api/v1/sites/{site.public_id}/reports/{report}?{query}")
    assert answer.status_code == 200, answer.content
    return answer.json()["results"]


def test_outbound_links_and_downloads_by_hand(shop):
    site, client = shop
    assert results(client, site, "outbound-links") == [
        {"target": "https://github.com/naboria", "visitors": 2, "clicks": 3},
        {"target": "https://example.org/partner", "visitors": 1, "clicks": 1},
    ]
    assert results(client, site, "downloads") == [
        {"target": "https://shop.example/docs/guide.pdf", "visitors": 2, "clicks": 2}
    ]


def test_time_on_page_and_scroll_depth_by_hand(shop):
    site, client = shop
    assert results(client, site, "engagement") == [
        {
            "page": "/",
            "pageviews": 3,
            "visitors": 3,
            "time_on_page_seconds": 18.3,
            "engagement_reports": 3,
            "scroll_depth": 50.0,
        },
        {
            "page": "/docs",
            "pageviews": 1,
            "visitors": 1,
            "time_on_page_seconds": 10.0,
            "engagement_reports": 1,
            "scroll_depth": 100.0,
        },
    ]


def test_pages_read_a_sample_of_visitors_over_large_periods_unless_told_not_to(shop, monkeypatch):
    """As every page report: above SAMPLE_ABOVE visits (counted in the refreshed facts) a share
    of visitors is read, the overview's share, unless ``sampling=none`` asks for the exact
    answer."""
    site, client = shop
    monkeypatch.setattr(session_facts, "SAMPLE_ABOVE", 1)
    session_facts._visit_counts.clear()  # the visit count of the period is kept a minute
    reports = f"/api/v1/sites/{site.public_id}/reports"
    sampled = client.get(f"{reports}/engagement?{PERIOD}").json()
    overview = client.get(f"{reports}/overview?{PERIOD}").json()
    assert sampled["sample_rate"] == overview["sample_rate"]
    facts = clickhouse.get_client().command(
        "SELECT count() FROM session_facts WHERE site_id = {s:String}",
        parameters={"s": site.public_id},
    )
    assert (sampled["sample_rate"] < 1) == (int(facts) > 1)
    exact = client.get(
        f"/api/v1/sites/{site.public_id}/reports/engagement?{PERIOD}&sampling=none"
    ).json()
    assert exact["sample_rate"] == 1.0
    assert [(row["page"], row["pageviews"], row["visitors"]) for row in exact["results"]] == [
        ("/", 3, 3),
        ("/docs", 1, 1),
    ]


def test_filters_apply(shop):
    site, client = shop
    germany = f"{PERIOD}&country=DE"
    assert results(client, site, "outbound-links", germany) == [
        {"target": "https://github.com/naboria", "visitors": 1, "clicks": 2},
        {"target": "https://example.org/partner", "visitors": 1, "clicks": 1},
    ]
    assert results(client, site, "downloads", germany) == []
    assert results(client, site, "engagement", germany) == [
        {
            "page": "/",
            "pageviews": 1,
            "visitors": 1,
            "time_on_page_seconds": 25.0,
            "engagement_reports": 2,
            "scroll_depth": 50.0,
        }
    ]


def test_bots_count_when_asked(shop):
    site, client = shop
    found = results(client, site, "outbound-links", f"{PERIOD}&bots=include")
    assert found[0] == {"target": "https://github.com/naboria", "visitors": 3, "clicks": 4}


def test_pagination_and_csv(shop):
    site, client = shop
    assert [
        row["target"]
        for row in results(client, site, "outbound-links", f"{PERIOD}&page=2&page_size=1")
    ] == ["https://example.org/partner"]
    answer = client.get(f"/api/v1/sites/{site.public_id}/reports/engagement?{PERIOD}&format=csv")
    assert answer.status_code == 200
    lines = answer.content.decode().splitlines()
    assert lines[0] == (
        "page,pageviews,visitors,time_on_page_seconds,engagement_reports,scroll_depth"
    )
    assert lines[1] == "/,3,3,18.3,3,50.0"


def test_another_organizations_site_is_not_found(shop):
    _, client = shop
    theirs = cast(Site, SiteFactory(organization=OrganizationFactory()))
    answer = client.get(f"/api/v1/sites/{theirs.public_id}/reports/engagement?{PERIOD}")
    assert answer.status_code == 404


def test_bad_input_is_a_400(shop):
    site, client = shop
    for query in ("page_size=0", "from=2026-13-01", "page=x"):
        answer = client.get(f"/api/v1/sites/{site.public_id}/reports/downloads?{query}")
        assert answer.status_code == 400, query
        assert answer.json()["error"]


def test_a_visit_level_filter_keeps_the_engagement_of_the_matching_visits(shop):
    """v5 arrives from Google on Nov 21 (Paris) at 09:00 UTC: its pageview has the source, its
    engagement (12 s, scroll 80) and outbound click are stored as ingestion stores them,
    without a referrer ("direct"). Under source=Google: / 1 pageview, 12.0 s, scroll 80.0;
    outbound https://github.com/naboria 1 visitor 1 click."""
    site, client = shop
    google = {"referrer_source": "Google", "referrer_medium": "search"}
    direct = {"referrer_source": "direct", "referrer_medium": "direct"}
    insert_rows(
        "page_events",
        [
            event(site, "2026-11-21 09:00:00", "v5", "/", "pageview", **google),
            event(
                site,
                "2026-11-21 09:00:20",
                "v5",
                "/",
                "engagement",
                visible_ms=12_000,
                scroll_depth=80,
                **direct,
            ),
            event(
                site,
                "2026-11-21 09:00:30",
                "v5",
                "/",
                "outbound",
                target="https://github.com/naboria",
                **direct,
            ),
        ],
    )
    google_only = f"{PERIOD}&source=Google"
    assert results(client, site, "engagement", google_only) == [
        {
            "page": "/",
            "pageviews": 1,
            "visitors": 1,
            "time_on_page_seconds": 12.0,
            "engagement_reports": 1,
            "scroll_depth": 80.0,
        }
    ]
    assert results(client, site, "outbound-links", google_only) == [
        {"target": "https://github.com/naboria", "visitors": 1, "clicks": 1}
    ]


@pytest.mark.parametrize("refreshed", [False, True], ids=["live", "refreshed"])
def test_late_engagement_counts_for_its_visit_and_a_run_without_pageview_for_none(shop, refreshed):
    """v6 on Nov 21 (UTC): 08:00 pageview /late; 08:50 engagement /late 40 s, scroll 90 (50
    minutes later, yet it joins the visit: engagement is no activity); 10:00 a custom event
    (a new run, without a pageview: no visit), 10:01 an outbound click and 10:05 an engagement
    of 7 s, scroll 10, in that run: neither counts. Under path=/late (v6's visit only): /late 1
    pageview, 1 visitor, 40.0 s, 1 report, scroll 90.0; no outbound link."""
    site, client = shop
    insert_rows(
        "page_events",
        [
            event(site, "2026-11-21 08:00:00", "v6", "/late", "pageview"),
            event(
                site,
                "2026-11-21 08:50:00",
                "v6",
                "/late",
                "engagement",
                visible_ms=40_000,
                scroll_depth=90,
            ),
            event(site, "2026-11-21 10:00:00", "v6", "/late", "event", event_name="Ping"),
            event(
                site,
                "2026-11-21 10:01:00",
                "v6",
                "/late",
                "outbound",
                target="https://example.org/orphan",
            ),
            event(
                site,
                "2026-11-21 10:05:00",
                "v6",
                "/late",
                "engagement",
                visible_ms=7_000,
                scroll_depth=10,
            ),
        ],
    )
    if refreshed:
        session_facts.refresh()
    late = f"{PERIOD}&path=/late"
    assert results(client, site, "engagement", late) == [
        {
            "page": "/late",
            "pageviews": 1,
            "visitors": 1,
            "time_on_page_seconds": 40.0,
            "engagement_reports": 1,
            "scroll_depth": 90.0,
        }
    ]
    assert results(client, site, "outbound-links", late) == []
