"""Filters keep or leave out whole visits, and every report agrees under every filter: checked
against a hand-made data set (numbers computed by hand below), with the visits computed live
and from refreshed session facts. Also the edge cases of filters and goals: negation, wildcard,
contains, several values, empty property values, conversion rates from one visit set, the ads
and consent reports applying or refusing filters, exact visitor counts."""

from __future__ import annotations

import importlib
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from analytics import session_facts
from analytics.reports import ad_revenue, ads_and_consent, conversions, traffic
from analytics.reports.query import Filter, InvalidReportQuery, ReportQuery
from consent.mirroring import CONSENT_EVENT_COLUMNS
from events.rows import AdRow, encoder
from ingest.storage import insert_rows
from naboria import clickhouse
from tests.integration.test_reports import at, page

pytestmark = [pytest.mark.clickhouse, pytest.mark.usefixtures("clickhouse_schema")]
PARIS = "Europe/Paris"


@pytest.fixture(scope="module", params=["live", "refreshed"])
def visits(request: pytest.FixtureRequest) -> str:
    """Five visits in Paris time (UTC+1), the period Nov 20-21:

    A  a  Nov 20 10:00 / (Google, FR, utm_term shoes, utm_content banner), 10:01 /blog/one,
          10:02 /pricing: 3 pageviews, 120 s
    B  b  Nov 20 13:00 /blog/two (DE, mobile): a bounce, 0 s
    E  e  Nov 20 16:00 / (FR), 16:01 Signup without properties: 1 pageview, 60 s
    D  a  Nov 21 11:00 /pricing on docs.example (FR, direct), 11:01 Signup{plan: pro}: 60 s
    C  c  Nov 21 23:50 / (Google, FR), Nov 22 00:05 /pricing, 00:06 Signup{plan: ""},
          00:07 /thanks: 3 pageviews (2 after the period's end), 1020 s
    a bot on Nov 20 (never counted); hostnames are empty unless said

    Totals: visitors 4 (a, b, c, e), visits 5, pageviews 9, bounce rate 20 %, duration
    (120 + 0 + 60 + 60 + 1020) / 5 = 252 s. By day (start of visit): Nov 20 A, B, E (3
    visits, 5 pageviews), Nov 21 D, C (2 visits, 4 pageviews).
    """
    site = f"filters-{uuid.uuid4().hex[:8]}"
    google = {"referrer_source": "Google", "referrer_medium": "search"}
    docs = "docs.example"
    tagged = {"utm_term": "shoes", "utm_content": "banner"}
    insert_rows(
        "page_events",
        [
            page(site, "2026-11-20 09:00:00", "a", "/", country="FR", **google, **tagged),
            page(site, "2026-11-20 09:01:00", "a", "/blog/one", country="FR"),
            page(site, "2026-11-20 09:02:00", "a", "/pricing", country="FR"),
            page(site, "2026-11-20 12:00:00", "b", "/blog/two", country="DE", device_type="mobile"),
            page(site, "2026-11-20 15:00:00", "e", "/", country="FR"),
            page(site, "2026-11-20 15:01:00", "e", "/", "event", event_name="Signup", country="FR"),
            page(site, "2026-11-21 10:00:00", "a", "/pricing", country="FR", hostname=docs),
            page(
                site,
                "2026-11-21 10:01:00",
                "a",
                "/pricing",
                "event",
                event_name="Signup",
                properties={"plan": "pro"},
                country="FR",
                hostname=docs,
            ),
            page(site, "2026-11-21 22:50:00", "c", "/", country="FR", **google),
            page(site, "2026-11-21 23:05:00", "c", "/pricing", country="FR"),
            page(
                site,
                "2026-11-21 23:06:00",
                "c",
                "/pricing",
                "event",
                event_name="Signup",
                properties={"plan": ""},
                country="FR",
            ),
            page(site, "2026-11-21 23:07:00", "c", "/thanks", country="FR"),
            page(site, "2026-11-20 11:00:00", "bot", "/blog/one", is_bot=1, **google),
        ],
    )
    if request.param == "refreshed":
        session_facts.refresh()
    return site


def query(site: str, **params: str) -> ReportQuery:
    return ReportQuery.parse(
        site_id=site, timezone=PARIS, params={"from": "2026-11-20", "to": "2026-11-21", **params}
    )


# filter -> (visitors, visits, pageviews), by hand from the visits above.
EXPECTED = {
    "": (4, 5, 9),
    "path=/blog/one": (1, 1, 3),  # A, whole
    "source=Google": (2, 2, 6),  # A and C (with C's pageviews after the period's end)
    "country=!FR": (1, 1, 1),  # B
    "country=FR|DE": (4, 5, 9),
    "path=/blog/*": (2, 2, 4),  # A, B
    "path=~blog": (2, 2, 4),
    "path=!/blog/*": (3, 3, 5),  # C, D, E (visitors c, a, e)
    "hostname=docs.example": (1, 1, 1),  # D
    "hostname=!docs.example": (4, 4, 8),  # A, B, C, E
    "entry_page=/pricing": (1, 1, 1),  # D
    "exit_page=/thanks": (1, 1, 3),  # C
    "goal=Signup": (3, 3, 5),  # C, D, E
    "goal=!Signup": (2, 2, 4),  # A, B
    "property=plan:": (1, 1, 3),  # C only: E's Signup lacks the key
    "property=plan:pro": (1, 1, 1),  # D
    "property=plan:!pro": (4, 4, 8),  # every visit but D
    "device=mobile|tablet": (1, 1, 1),  # B
    "utm_term=shoes": (1, 1, 3),  # A
    "utm_content=~ann": (1, 1, 3),  # A
    "utm_term=!shoes": (4, 4, 6),  # B, C, D, E (visitors b, c, a, e)
    "source=Google&path=/pricing": (2, 2, 6),  # A and C both viewed /pricing
}


def params_of(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split("&") if part)


@pytest.mark.parametrize("filters", EXPECTED)
def test_cards_graph_and_breakdowns_agree_under_every_filter(visits, filters):
    visitors, visit_count, pageviews = EXPECTED[filters]
    asked = query(visits, **params_of(filters))
    cards = traffic.overview(asked)["period"]
    assert (cards["visitors"], cards["visits"], cards["pageviews"]) == EXPECTED[filters]

    points = traffic.timeseries(asked, interval="day")["points"]
    assert sum(point["visits"] for point in points) == visit_count
    assert sum(point["pageviews"] for point in points) == pageviews
    hours = traffic.timeseries(asked, interval="hour")["points"]
    assert sum(point["pageviews"] for point in hours) == pageviews

    for dimension in ("sources", "countries", "devices", "browsers", "hostnames", "utm_terms"):
        results = traffic.breakdown(asked, dimension=dimension, limit=100)["results"]
        assert sum(row["visits"] for row in results) == visit_count, dimension
        assert sum(row["pageviews"] for row in results) == pageviews, dimension
    entries = traffic.entry_exit_pages(asked, which="entry", limit=100)["results"]
    assert sum(row["visits"] for row in entries) == visit_count

    # Each visitor is in one weekly cohort (the period is in one week).
    cohorts = conversions.retention(asked, weeks=1)["cohorts"]
    assert sum(cohort["visitors"] for cohort in cohorts) == visitors

    board = traffic.dashboard(asked, interval="day", limit=100)
    assert board["overview"]["period"] == cards
    assert board["timeseries"]["points"] == points


def test_a_page_filter_keeps_the_whole_visit(visits):
    """A (/, /blog/one, /pricing over 120 s) filtered on its middle page is still a 3-page
    visit that did not bounce, lasted 120 s and began on / and ended on /pricing."""
    asked = query(visits, path="/blog/one")
    assert traffic.overview(asked)["period"] == {
        "visitors": 1,
        "visits": 1,
        "pageviews": 3,
        "views_per_visit": 3.0,
        "bounce_rate": 0.0,
        "visit_duration_seconds": 120.0,
    }
    entry = traffic.entry_exit_pages(asked, which="entry")["results"]
    exit_ = traffic.entry_exit_pages(asked, which="exit")["results"]
    assert [(row["page"], row["visits"]) for row in entry] == [("/", 1)]
    assert [(row["page"], row["visits"]) for row in exit_] == [("/pricing", 1)]
    pages = traffic.breakdown(asked, dimension="pages")["results"]
    assert [(row["value"], row["pageviews"]) for row in pages] == [
        ("/", 1),
        ("/blog/one", 1),
        ("/pricing", 1),
    ]


def test_the_whole_data_set_by_hand(visits):
    assert traffic.overview(query(visits))["period"] == {
        "visitors": 4,
        "visits": 5,
        "pageviews": 9,
        "views_per_visit": 1.8,
        "bounce_rate": 20.0,  # B
        "visit_duration_seconds": 252.0,
    }
    points = traffic.timeseries(query(visits), interval="day")["points"]
    assert [(p["date"], p["visits"], p["pageviews"]) for p in points] == [
        ("2026-11-20", 3, 5),
        ("2026-11-21", 2, 4),  # C's pageviews after midnight count with C
    ]


def test_goal_conversion_rates_take_both_counts_from_the_filtered_visits(visits):
    """Unfiltered: 3 of the 4 visitors signed up (a in D, c, e): 75 %, 3 events. Under
    source=Google (A and C, visitors a and c) only C signed up: 1 of 2, 50 % (a's Signup was
    in D, a direct visit; C's Signup event itself has no source of its own)."""
    assert conversions.custom_events(query(visits))["results"] == [
        {"goal": "Signup", "visitors": 3, "events": 3, "conversion_rate": 75.0}
    ]
    assert conversions.custom_events(query(visits, source="Google"))["results"] == [
        {"goal": "Signup", "visitors": 1, "events": 1, "conversion_rate": 50.0}
    ]
    plans = conversions.event_properties(query(visits), event="Signup", key="plan")["results"]
    assert plans == [
        {"value": "", "visitors": 1, "events": 1},  # C; E has no plan at all
        {"value": "pro", "visitors": 1, "events": 1},
    ]
    only_google = conversions.event_properties(
        query(visits, source="Google"), event="Signup", key="plan"
    )
    assert only_google["results"] == [{"value": "", "visitors": 1, "events": 1}]


def test_a_funnel_under_a_page_filter_counts_whole_visits(visits):
    steps = conversions.funnel(query(visits, path="/blog/*"), steps=["/", "/blog/one"])["steps"]
    assert [step["visits"] for step in steps] == [1, 1]  # A (B never saw /)


def test_a_funnel_step_with_a_wildcard_matches_any_page_it_covers(visits):
    """Steps /, /blog/*, /pricing: A went / → /blog/one → /pricing (all three); E and C saw /
    and no blog page (C's /pricing came without one); B saw only /blog/two, D only /pricing.
    So 3, 1, 1 visits. Starting at /blog/*: A and B (/blog/one, /blog/two), then A's /pricing.
    An exact match of "/blog/*" would find no visit. An event step stays exact: "event:Sign*"
    is no Signup, and a % or _ in a step is a plain character."""
    for asked in (query(visits), replace(query(visits), use_facts=False)):
        steps = conversions.funnel(asked, steps=["/", "/blog/*", "/pricing"])["steps"]
        assert [(step["visits"], step["drop_off"]) for step in steps] == [(3, 0), (1, 2), (1, 0)]
        assert steps[1]["step"] == "/blog/*"
        from_blog = conversions.funnel(asked, steps=["/blog/*", "/pricing"])["steps"]
        assert [step["visits"] for step in from_blog] == [2, 1]
        literal = conversions.funnel(asked, steps=["/", "event:Sign*", "/blog/_ne", "/b%"])
        assert [step["visits"] for step in literal["steps"]] == [3, 0, 0, 0]


@pytest.mark.parametrize(
    ("text", "patterns", "negated"),
    [
        ("FR", (("=", "FR"),), False),
        ("FR|DE", (("=", "FR"), ("=", "DE")), False),
        ("!FR", (("=", "FR"),), True),
        ("/blog/*", (("LIKE", "/blog/%"),), False),
        ("~blog|new", (("LIKE", "%blog%"), ("LIKE", "%new%")), False),
        ("!~50%_off", (("LIKE", "%50\\%\\_off%"),), True),
        ("a\\|b|\\*|\\!x", (("=", "a|b"), ("=", "*"), ("=", "!x")), False),
        ("", (("=", ""),), False),
    ],
)
def test_filter_syntax(text, patterns, negated):
    parsed = Filter.parse("path", text)
    assert (parsed.patterns, parsed.negated) == (patterns, negated)


def test_filter_values_are_parameters_never_sql(visits):
    hostile = "x' OR 1=1 --"
    assert traffic.overview(query(visits, country=hostile))["period"]["visits"] == 0
    assert traffic.overview(query(visits, path=f"~{hostile}"))["period"]["visits"] == 0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"path": "~"}, "path: ~ needs a text to look for"),
        ({"property": "plan"}, "property: use key:value"),
        ({"country": "x" * 2049}, "country: at most 2048 characters"),
        ({"country": "|".join(["FR"] * 101)}, "country: at most 100 values"),
        ({"from": "9999-12-31", "to": "9999-12-31"}, "from: '9999-12-31' is out of range"),
        ({"from": "0001-01-01"}, "from: '0001-01-01' is out of range"),
        ({"to": "2100-01-01"}, "to: '2100-01-01' is out of range"),
        ({"from": "1970-01-01", "to": "1970-01-02", "compare": "previous"}, "compare: "),
        ({"compare": "0001-01-01..0001-01-02"}, "compare: '0001-01-01' is out of range"),
    ],
)
def test_bad_filters_and_dates_are_explained(params, message):
    with pytest.raises(InvalidReportQuery, match=message):
        ReportQuery.parse(site_id="s", timezone="Pacific/Kiritimati", params=params)


def test_the_widest_dates_allowed_answer_in_every_timezone():
    """1970-01-01 in Tokyo starts in 1969 UTC, 2099-12-31 in UTC-11 ends in 2100 UTC: both
    still within what ClickHouse and Python convert."""
    first = ReportQuery.parse(
        site_id="s", timezone="Asia/Tokyo", params={"from": "1970-01-01", "to": "1970-01-01"}
    )
    last = ReportQuery.parse(
        site_id="s", timezone="Pacific/Pago_Pago", params={"from": "2099-12-31", "to": "2099-12-31"}
    )
    assert first.period.start_utc == datetime(1969, 12, 31, 15, tzinfo=UTC)
    assert last.period.end_utc == datetime(2100, 1, 1, 11, tzinfo=UTC)
    for asked in (first, last):
        assert traffic.overview(asked)["period"]["visits"] == 0
        assert len(traffic.timeseries(asked, interval="hour")["points"]) == 24
        assert traffic.timeseries(asked, interval="day")["points"][0]["visits"] == 0


@pytest.fixture(scope="module")
def ads_site() -> str:
    """Ad events on Nov 20 (Paris): campaign 1 on / to FR desktops: 3 impressions, 1 click;
    to a DE mobile: 1 impression. Consent: two decisions from FR in Chrome (one granting
    analytics), one from DE in Firefox (granting it)."""
    site = f"ads-{uuid.uuid4().hex[:8]}"
    shown = [
        ("impression", "FR", "desktop", "/"),
        ("impression", "FR", "desktop", "/"),
        ("impression", "FR", "desktop", "/blog/one"),
        ("click", "FR", "desktop", "/"),
        ("impression", "DE", "mobile", "/"),
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
                    campaign_id=1,
                    ad_id=10,
                    placement_id=5,
                    retention_days=400,
                    country=country,
                    device_type=device,
                    pathname=path,
                )
            )
            for index, (kind, country, device, path) in enumerate(shown)
        ],
    )
    moment = datetime(2026, 11, 20, 10, tzinfo=UTC)
    clickhouse.get_client().insert(
        "consent_events",
        [
            [number, site, moment, "browser", granted, denied, 1, "en", browser, country]
            for number, (granted, denied, browser, country) in enumerate(
                [
                    (["analytics"], [], "Chrome", "FR"),
                    ([], ["analytics"], "Chrome", "FR"),
                    (["analytics"], [], "Firefox", "DE"),
                ],
                start=hash(site) % 10**9,
            )
        ],
        column_names=list(CONSENT_EVENT_COLUMNS),
    )
    return site


def test_the_ads_report_applies_the_filters_its_events_carry(ads_site):
    def counts(**params: str) -> list[tuple[int, int]]:
        results = ads_and_consent.ad_performance(query(ads_site, **params))["results"]
        return [(row["impressions"], row["clicks"]) for row in results]

    assert counts() == [(4, 1)]
    assert counts(country="FR") == [(3, 1)]
    assert counts(country="!FR") == [(1, 0)]
    assert counts(device="mobile", path="/") == [(1, 0)]
    assert counts(path="/blog/*") == [(1, 0)]


def test_the_consent_report_applies_country_and_browser(ads_site):
    def rates(**params: str) -> list[tuple[int, int]]:
        results = ads_and_consent.consent_rates(query(ads_site, **params))["results"]
        return [(row["decisions"], row["granted"]) for row in results]

    assert rates() == [(3, 2)]
    assert rates(country="FR") == [(2, 1)]
    assert rates(browser="Firefox|Safari") == [(1, 1)]


@pytest.mark.parametrize(
    ("report", "params", "message"),
    [
        (ads_and_consent.ad_performance, {"source": "Google"}, "source: the ads report cannot"),
        (ads_and_consent.ad_performance, {"goal": "Signup"}, "goal: the ads report cannot"),
        (ads_and_consent.consent_rates, {"path": "/"}, "path: the consent report cannot"),
        (ad_revenue.ad_revenue, {"country": "FR"}, "country: the ad-revenue report cannot"),
    ],
)
def test_a_report_refuses_the_filters_it_cannot_apply(ads_site, report, params, message):
    with pytest.raises(InvalidReportQuery, match=message):
        report(query(ads_site, **params))


def test_exact_visitors_when_asked_match_a_plain_distinct_count():
    """70,000 visitors (each one pageview, some twice on another day): beyond the set size
    where ``uniq`` is exact. ``sampling=none`` gives count(DISTINCT) of the raw table."""
    site = f"exact-{uuid.uuid4().hex[:8]}"
    client = clickhouse.get_client()
    client.command(
        """
        INSERT INTO page_events (event_id, site_id, timestamp, received_at, event_type,
                                 visitor_id, pathname, retention_days)
        SELECT generateUUIDv4(), {site:String},
               toDateTime64('2026-11-20 08:00:00', 3, 'UTC') + INTERVAL (number % 50000) SECOND
                   + INTERVAL intDiv(number, 70000) DAY,
               now64(3), 'pageview', concat('visitor-', toString(number % 70000)), '/', 30
        FROM numbers(77000)
        """,
        parameters={"site": site},
    )
    distinct = client.command(
        "SELECT count(DISTINCT visitor_id) FROM page_events WHERE site_id = {site:String}",
        parameters={"site": site},
    )
    assert int(distinct) == 70_000
    exact = traffic.overview(query(site, sampling="none"))["period"]
    assert exact["visitors"] == 70_000
    assert exact["visits"] == 77_000
    by_day = traffic.timeseries(query(site, sampling="none"), interval="day")["points"]
    assert [point["visitors"] for point in by_day] == [70_000, 7_000]


def test_stored_sources_get_one_spelling_and_direct_traffic_a_name():
    """Rows stored before sources had one spelling (one visitor each): google, Google,
    google.com, www.google.de (4 x Google), "" and direct (2 x Direct / None), Newsletter.
    The migration renames them in the raw events and the refreshed facts alike."""
    site = f"sources-{uuid.uuid4().hex[:8]}"
    written = ["google", "Google", "google.com", "www.google.de", "", "direct", "Newsletter"]
    insert_rows(
        "page_events",
        [
            page(site, "2026-11-20 09:00:00", f"v{index}", "/", referrer_source=source)
            for index, source in enumerate(written)
        ],
    )
    time.sleep(1.1)  # so the refresh takes these rows in (insert times have whole seconds)
    session_facts.refresh()
    client = clickhouse.get_client()
    for operation in importlib.import_module(
        "analytics.clickhouse_migrations.0008_source_names"
    ).OPERATIONS:
        client.command(operation)
    expected = [("Google", 4), ("Direct / None", 2), ("newsletter", 1)]
    for asked in (query(site), replace(query(site), use_facts=False)):
        sources = traffic.breakdown(asked, dimension="sources")["results"]
        assert [(row["value"], row["visits"]) for row in sources] == expected
    stored = client.query(
        "SELECT DISTINCT referrer_source FROM page_events WHERE site_id = {site:String}",
        parameters={"site": site},
    ).result_rows
    assert sorted(source for (source,) in stored) == ["Direct / None", "Google", "newsletter"]
    assert traffic.overview(query(site, source="Direct / None"))["period"]["visits"] == 2


def test_direct_rows_without_a_source_are_named_in_reports(visits):
    """D has no source: reports name it Direct / None (the others came from Google, or, for
    B and E, also from nowhere)."""
    sources = traffic.breakdown(query(visits), dimension="sources")["results"]
    assert [(row["value"], row["visits"]) for row in sources] == [
        ("Direct / None", 3),  # B, D, E (visitors b, a, e)
        ("Google", 2),  # A, C
    ]
