"""Every report against numbers computed by hand from a small fixed data set (below), in a
site timezone that is not UTC, including its day boundaries. Each test runs twice: with the
visits computed live (rows inserted after the last session-facts refresh) and from the
refreshed session facts; and facts and raw answers agree."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from analytics import session_facts
from analytics.reports import ads_and_consent, conversions, traffic
from analytics.reports.query import InvalidReportQuery, Period, ReportQuery
from consent.mirroring import CONSENT_EVENT_COLUMNS
from events.rows import AdRow, PageRow, clickhouse_time, encoder
from ingest.storage import insert_rows
from naboria import clickhouse

pytestmark = [pytest.mark.clickhouse, pytest.mark.usefixtures("clickhouse_schema")]
PARIS = "Europe/Paris"


def at(text: str) -> str:
    """A UTC moment as rows store it."""
    moment = datetime.fromisoformat(text).replace(tzinfo=UTC)
    return clickhouse_time(int(moment.timestamp() * 1000))


def page(site, moment, visitor, path, kind="pageview", **extra) -> bytes:
    return encoder.encode(
        PageRow(
            event_id=str(uuid.uuid4()),
            site_id=site,
            timestamp=at(moment),
            received_at=at(moment),
            event_type=kind,
            visitor_id=visitor,
            consent_state="none",
            pathname=path,
            url=f"https://shop.example{path}",
            retention_days=400,
            browser="Chrome",
            **extra,
        )
    )


@pytest.fixture(scope="module", params=["live", "refreshed"])
def shop(request: pytest.FixtureRequest) -> str:
    """The data set, in Paris time (UTC+1 in November):

    v1/s1  Nov 20 10:00 /, 10:00:30 /pricing, 10:01 Signup{plan: pro}, 10:02 /thanks
    v2/s2  Nov 20 11:00 / from Google (search), FR, mobile: a bounce
    v2/s3  Nov 21 13:00 /pricing, 13:05 /
    v3/s4  Nov 22 00:30 / (Nov 21 23:30 UTC: after the range's last day in Paris)
    v4/s5  Nov 20 00:30 / (Nov 19 23:30 UTC: inside the range's first day in Paris)
    bot    Nov 20 12:00 / (a bot: excluded)
    v1/s7  Nov 24 11:00 / (v1 comes back the next week)
    """
    site = f"reports-{uuid.uuid4().hex[:8]}"
    insert_rows(
        "page_events",
        [
            page(site, "2026-11-20 09:00:00", "v1", "/"),
            page(site, "2026-11-20 09:00:30", "v1", "/pricing"),
            page(
                site,
                "2026-11-20 09:01:00",
                "v1",
                "/pricing",
                "event",
                event_name="Signup",
                properties={"plan": "pro"},
            ),
            page(site, "2026-11-20 09:02:00", "v1", "/thanks"),
            page(
                site,
                "2026-11-20 10:00:00",
                "v2",
                "/",
                referrer_source="Google",
                referrer_medium="search",
                country="FR",
                device_type="mobile",
            ),
            page(site, "2026-11-21 12:00:00", "v2", "/pricing"),
            page(site, "2026-11-21 12:05:00", "v2", "/"),
            page(site, "2026-11-21 23:30:00", "v3", "/"),
            page(site, "2026-11-19 23:30:00", "v4", "/"),
            page(site, "2026-11-20 11:00:00", "bot", "/", is_bot=1),
            page(site, "2026-11-24 10:00:00", "v1", "/"),
        ],
    )
    ads = [
        (1, 10, "impression", 0),
        (1, 10, "impression", 0),
        (1, 10, "impression", 0),
        (1, 10, "impression", 0),
        (1, 10, "viewable", 0),
        (1, 10, "viewable", 0),
        (1, 10, "click", 0),
        (2, 20, "impression", 0),
        (1, 10, "impression", 1),
    ]
    insert_rows(
        "ad_events",
        [
            encoder.encode(
                AdRow(
                    event_id=str(uuid.uuid4()),
                    impression_id=f"i{index}",
                    site_id=site,
                    timestamp=at("2026-11-20 10:30:00"),
                    received_at=at("2026-11-20 10:30:00"),
                    event_type=kind,
                    visitor_id="v",
                    consent_state="none",
                    campaign_id=campaign,
                    ad_id=ad,
                    placement_id=5,
                    retention_days=400,
                    is_bot=bot,
                )
            )
            for index, (campaign, ad, kind, bot) in enumerate(ads)
        ],
    )
    clickhouse.get_client().insert(
        "consent_events",
        [
            [
                number,
                site,
                datetime(2026, 11, 20, 10, tzinfo=UTC),
                "browser",
                granted,
                denied,
                1,
                "en",
                "Chrome",
                "FR",
            ]
            for number, (granted, denied) in enumerate(
                [
                    (["analytics", "necessary"], ["ads"]),
                    (["necessary"], ["analytics", "ads"]),
                    (["ads", "analytics", "necessary"], []),
                ],
                start=hash(site) % 10**9,
            )
        ],
        column_names=list(CONSENT_EVENT_COLUMNS),
    )
    if request.param == "refreshed":
        session_facts.refresh()
    return site


def query(
    site: str, start: str = "2026-11-20", end: str = "2026-11-21", **params: str
) -> ReportQuery:
    return ReportQuery.parse(
        site_id=site, timezone=PARIS, params={"from": start, "to": end, **params}
    )


def raw(report_query: ReportQuery) -> ReportQuery:
    return replace(report_query, use_facts=False)


def test_overview_counts_visits_bounces_and_durations(shop):
    assert traffic.overview(query(shop))["period"] == {
        "visitors": 3,  # v1, v2, v4 (v3 is on Nov 22 in Paris; the bot does not count)
        "visits": 4,  # s1, s2, s3, s5
        "pageviews": 7,
        "views_per_visit": 1.75,
        "bounce_rate": 50.0,  # s2 and s5: one pageview, no event
        "visit_duration_seconds": 105.0,  # (120 + 0 + 300 + 0) / 4
    }


def test_bots_count_only_when_asked(shop):
    assert traffic.overview(query(shop, bots="include"))["period"]["visitors"] == 4


def test_comparison_with_the_previous_period(shop):
    answer = traffic.overview(query(shop, "2026-11-22", "2026-11-23", compare="previous"))
    assert answer["period"]["visitors"] == 1  # v3
    assert answer["compare"]["visitors"] == 3
    assert answer["change"]["visitors"] == -66.7


def test_timeseries_by_day_in_site_time_from_facts_and_raw_alike(shop):
    expected = [
        {"date": "2026-11-20", "visitors": 3, "visits": 3, "pageviews": 5},
        {"date": "2026-11-21", "visitors": 1, "visits": 1, "pageviews": 2},
    ]
    from_facts = traffic.timeseries(query(shop), interval="day")
    from_raw = traffic.timeseries(raw(query(shop)), interval="day")
    assert (from_facts["source"], from_raw["source"]) == ("facts", "raw")
    assert from_facts["points"] == from_raw["points"] == expected


def test_hourly_timeseries_has_every_hour_of_the_days(shop):
    points = traffic.timeseries(query(shop, "2026-11-20", "2026-11-20"), interval="hour")["points"]
    assert len(points) == 24
    assert points[0] == {"date": "2026-11-20 00:00", "visitors": 1, "visits": 1, "pageviews": 1}
    assert points[10] == {"date": "2026-11-20 10:00", "visitors": 1, "visits": 1, "pageviews": 3}


def test_top_pages_from_facts_and_raw_alike(shop):
    expected = [
        {"value": "/", "visitors": 3, "visits": 4, "pageviews": 4},
        {"value": "/pricing", "visitors": 2, "visits": 2, "pageviews": 2},
        {"value": "/thanks", "visitors": 1, "visits": 1, "pageviews": 1},
    ]
    from_facts = traffic.breakdown(query(shop), dimension="pages")
    from_raw = traffic.breakdown(raw(query(shop)), dimension="pages")
    assert (from_facts["source"], from_raw["source"]) == ("facts", "raw")
    assert from_facts["results"] == from_raw["results"] == expected


def test_sources_countries_and_devices(shop):
    sources = traffic.breakdown(query(shop), dimension="sources")["results"]
    assert [(row["value"], row["visitors"]) for row in sources] == [
        ("Direct / None", 3),
        ("Google", 1),
    ]
    countries = traffic.breakdown(query(shop, device="mobile"), dimension="countries")["results"]
    assert countries == [{"value": "FR", "visitors": 1, "visits": 1, "pageviews": 1}]


def test_entry_and_exit_pages(shop):
    entries = traffic.entry_exit_pages(query(shop), which="entry")["results"]
    exits = traffic.entry_exit_pages(query(shop), which="exit")["results"]
    assert [(row["page"], row["visits"]) for row in entries] == [("/", 3), ("/pricing", 1)]
    assert [(row["page"], row["visits"]) for row in exits] == [("/", 3), ("/thanks", 1)]


def test_goals_and_their_conversion_rate(shop):
    assert conversions.custom_events(query(shop))["results"] == [
        {"goal": "Signup", "visitors": 1, "events": 1, "conversion_rate": 33.3}
    ]
    converted = traffic.overview(query(shop, goal="Signup"))["period"]
    assert (converted["visitors"], converted["visits"], converted["pageviews"]) == (1, 1, 3)
    properties = conversions.event_properties(query(shop), event="Signup", key="plan")
    assert properties["results"] == [{"value": "pro", "visitors": 1, "events": 1}]


def test_funnel_counts_steps_in_order_within_a_session(shop):
    steps = conversions.funnel(query(shop), steps=["/", "/pricing", "event:Signup"])["steps"]
    assert [(step["visits"], step["drop_off"]) for step in steps] == [(4, 0), (1, 3), (1, 0)]
    assert steps[2]["conversion_from_start"] == 25.0


def test_weekly_retention_cohorts(shop):
    cohorts = conversions.retention(query(shop, "2026-11-16", "2026-11-29"), weeks=2)["cohorts"]
    assert cohorts == [
        {"week": "2026-11-16", "visitors": 4, "returning": [4, 1], "retention": [100.0, 25.0]}
    ]


NO_VIDEO = {
    "video_starts": 0,
    "video_first_quartiles": 0,
    "video_midpoints": 0,
    "video_third_quartiles": 0,
    "video_completes": 0,
    "video_completion_rate": 0.0,
}


def test_ad_performance_per_campaign(shop):
    assert ads_and_consent.ad_performance(query(shop), by="campaign")["results"] == [
        {
            "campaign": "1",
            "impressions": 4,
            "viewable_impressions": 2,
            "viewable_rate": 50.0,
            "clicks": 1,
            "ctr": 25.0,
            **NO_VIDEO,
        },
        {
            "campaign": "2",
            "impressions": 1,
            "viewable_impressions": 0,
            "viewable_rate": 0.0,
            "clicks": 0,
            "ctr": 0.0,
            **NO_VIDEO,
        },
    ]


def test_consent_rates_per_purpose(shop):
    assert ads_and_consent.consent_rates(query(shop))["results"] == [
        {"purpose": "ads", "decisions": 3, "granted": 1, "rate": 33.3},
        {"purpose": "analytics", "decisions": 3, "granted": 2, "rate": 66.7},
        {"purpose": "necessary", "decisions": 3, "granted": 3, "rate": 100.0},
    ]


def test_realtime_visitors_and_their_current_pages():
    site = f"live-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC).replace(tzinfo=None)

    def ago(minutes: float) -> str:
        return (now - timedelta(minutes=minutes)).isoformat(sep=" ")

    insert_rows(
        "page_events",
        [
            page(site, ago(4), "a", "/other"),
            page(site, ago(1), "a", "/live"),  # a moved on: counted on /live only
            page(site, ago(2), "b", "/live"),
            page(site, ago(3), "c", "/other"),
            page(site, ago(10), "d", "/gone"),
        ],
    )
    assert traffic.realtime(site_id=site) == {
        "minutes": 5,
        "visitors": 3,
        "pages": [{"page": "/live", "visitors": 2}, {"page": "/other", "visitors": 1}],
    }


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "2026-13-01"}, "from: '2026-13-01' is not a date"),
        ({"from": "2026-11-21", "to": "2026-11-20"}, "the range ends before it starts"),
        ({"from": "2020-01-01", "to": "2026-01-01"}, "longer than 731 days"),
        ({"bots": "maybe"}, "bots: include or exclude"),
        ({"sampling": "some"}, "sampling: auto or none"),
        ({"property": "nokey"}, "property: use key:value"),
        ({"compare": "2026-01-01..x"}, "compare: 'x' is not a date"),
    ],
)
def test_bad_parameters_are_explained(params, message):
    with pytest.raises(InvalidReportQuery, match=message):
        ReportQuery.parse(site_id="s", timezone=PARIS, params=params)


def test_period_boundaries_follow_the_site_timezone():
    period = Period(date(2026, 3, 29), date(2026, 3, 29), PARIS)  # the day clocks go forward
    assert period.start_utc == datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert period.end_utc == datetime(2026, 3, 29, 22, tzinfo=UTC)  # a 23-hour day


def test_rows_after_a_refresh_join_their_visit_until_the_next_one():
    """A late row of a refreshed visit, and a new visit, count at once and only once."""
    site = f"late-{uuid.uuid4().hex[:8]}"
    insert_rows(
        "page_events",
        [
            page(site, "2026-11-20 09:00:00", "v1", "/"),
            page(site, "2026-11-20 09:01:00", "v1", "/pricing"),
        ],
    )
    session_facts.refresh()
    insert_rows(
        "page_events",
        [
            page(site, "2026-11-20 09:05:00", "v1", "/thanks"),  # late, same visit
            page(site, "2026-11-20 12:00:00", "v2", "/"),
        ],
    )
    expected = {
        "visitors": 2,
        "visits": 2,
        "pageviews": 4,
        "views_per_visit": 2.0,
        "bounce_rate": 50.0,  # s2
        "visit_duration_seconds": 150.0,  # (300 + 0) / 2
    }
    assert traffic.overview(query(site))["period"] == expected
    exits = traffic.entry_exit_pages(query(site), which="exit")["results"]
    assert [(row["page"], row["visits"]) for row in exits] == [("/", 1), ("/thanks", 1)]
    session_facts.refresh()
    assert traffic.overview(query(site))["period"] == expected


def test_large_periods_read_a_sample_of_visitors_and_scale_it_back(monkeypatch):
    site = f"sampled-{uuid.uuid4().hex[:8]}"
    insert_rows(
        "page_events",
        [
            page(
                site,
                f"2026-11-20 {10 + number // 60:02}:{number % 60:02}:00",
                f"v{number}",
                path,
            )
            for number in range(400)
            for path in ("/", "/pricing")
        ],
    )
    session_facts.refresh()
    monkeypatch.setattr(session_facts, "SAMPLE_ABOVE", 100)  # 400 visits: read 1 in 4

    sampled = traffic.overview(query(site))
    assert sampled["sample_rate"] == 0.25
    assert 300 <= sampled["period"]["visits"] <= 500
    assert sampled["period"]["visitors"] == sampled["period"]["visits"]
    assert (sampled["period"]["views_per_visit"], sampled["period"]["bounce_rate"]) == (2.0, 0.0)

    exact = traffic.overview(query(site, sampling="none"))
    assert exact["sample_rate"] == 1.0
    assert (exact["period"]["visitors"], exact["period"]["pageviews"]) == (400, 800)


def test_a_refresh_without_new_rows_rebuilds_nothing():
    site = f"idle-{uuid.uuid4().hex[:8]}"
    insert_rows("page_events", [page(site, "2026-11-20 09:00:00", "v1", "/")])
    # Insert times have whole seconds, and a refresh also takes the rows of the second it
    # started in (they may have arrived after it read): let that second pass first.
    time.sleep(1.1)
    assert session_facts.refresh() >= 2  # the row's day and the day before
    assert session_facts.refresh() == 0
    assert traffic.overview(query(site))["period"]["visits"] == 1


def test_the_dashboard_answers_as_the_reports_it_gathers(shop):
    both = query(shop, compare="previous")
    answer = traffic.dashboard(both, interval="day", limit=8)
    assert answer["overview"] == traffic.overview(both)
    assert answer["timeseries"] == traffic.timeseries(both, interval="day")
    for dimension in ("pages", *traffic.DASHBOARD_LISTS):
        assert answer["breakdowns"][dimension] == traffic.breakdown(
            both, dimension=dimension, limit=8
        )
