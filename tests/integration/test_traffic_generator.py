"""The traffic generator: deterministic for a seed, realistic enough to fill every report,
through bulk loading and through the real ingestion path, with clicks that follow the
documented click model."""

from __future__ import annotations

import io
import re
from collections import Counter
from datetime import UTC, datetime
from typing import cast
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command

from analytics.click_model import ImpressionFeatures, click_probability
from analytics.reports import app_releases, traffic
from analytics.reports.query import ReportQuery
from analytics.traffic_generator import (
    APP,
    HOUR_WEIGHTS,
    AdInventory,
    bulk_load,
    expected_ctr,
    generate_app_updates,
    generate_visits,
    send_through_ingest,
)
from ingest.referrers import DIRECT_SOURCE
from ingest.sinks import reset_sink
from naboria import clickhouse
from sites.models import Site
from tests.factories import SiteFactory
from tests.helpers import eventually

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.clickhouse,
    pytest.mark.usefixtures("clickhouse_schema", "direct_path"),
]
INVENTORY = AdInventory(((1, 11, 1), (2, 21, 1), (3, 31, 2)))
END = datetime(2026, 11, 20, 12, tzinfo=UTC)


def visits(count: int, seed: int = 3) -> list:
    return list(
        generate_visits(
            days=10,
            visitors=count,
            timezone="Europe/Paris",
            inventory=INVENTORY,
            seed=seed,
            end=END,
        )
    )


def test_same_seed_same_traffic_and_every_visit_is_plausible():
    first, again = visits(50), visits(50)
    assert [(v.visitor, [e.path for e in v.events]) for v in first] == [
        (v.visitor, [e.path for e in v.events]) for v in again
    ]
    # A visitor whose first visit would come after the end has not come yet.
    assert len({v.visitor for v in first}) >= 45
    assert {v.visitor for v in first} <= {f"gen-3-{n}" for n in range(50)}
    for visit in first:
        assert visit.events[0].kind == "pageview"
        assert all(event.at <= END for event in visit.events)
        assert [e.at for e in visit.events if e.kind == "pageview"] == sorted(
            e.at for e in visit.events if e.kind == "pageview"
        )


def test_click_model_favours_its_documented_features():
    base = ImpressionFeatures("desktop", 10, 1, False, "direct", 0)
    mobile = ImpressionFeatures("mobile", 10, 1, False, "direct", 0)
    evening = ImpressionFeatures("desktop", 20, 1, False, "direct", 0)
    assert click_probability(mobile) > click_probability(base)
    assert click_probability(evening) > click_probability(base)
    assert 0.005 < click_probability(base) < 0.05


def test_generated_clicks_match_the_model():
    generated = visits(4000, seed=11)
    impressions = [view for visit in generated for view in visit.ads]
    observed = sum(view.clicked for view in impressions) / len(impressions)
    assert len(impressions) > 3000
    assert abs(observed - expected_ctr(generated)) < 0.01


def test_bulk_loading_fills_the_reports(site):
    out = io.StringIO()
    call_command(
        "generate_traffic", site=site.public_id, visitors=300, days=10, bulk=True, stdout=out
    )
    assert "page events and" in out.getvalue()
    query = ReportQuery.parse(site_id=site.public_id, timezone=site.timezone, params={})
    overview = traffic.overview(query)["period"]
    assert overview["visitors"] >= 250  # most visitors visit within the last 30 days
    assert overview["visits"] >= overview["visitors"]
    sources = {row["value"] for row in traffic.breakdown(query, dimension="sources")["results"]}
    assert {"Google", "Facebook"} <= sources
    clicks = (
        clickhouse.get_client()
        .query(
            "SELECT countIf(event_type = 'click'), countIf(event_type = 'impression') "
            "FROM ad_events WHERE site_id = {s:String}",
            parameters={"s": site.public_id},
        )
        .result_rows[0]
    )
    assert 0 < clicks[0] < clicks[1]


def test_generating_through_the_ingestion_path(site):
    out = io.StringIO()
    call_command("generate_traffic", site=site.public_id, visitors=15, days=2, stdout=out)
    summary = out.getvalue()
    answered = dict(re.findall(r"(/[a-z-]+ \d{3}): ([\d,]+)", summary))
    assert set(answered) == {"/collect 202", "/ad-event 200"}, summary  # nothing refused
    count = (
        clickhouse.get_client()
        .query(
            "SELECT count() FROM page_events WHERE site_id = {s:String}",
            parameters={"s": site.public_id},
        )
        .result_rows[0][0]
    )
    assert count > 15


def test_unknown_site_is_a_clear_error():
    with pytest.raises(Exception, match="no site with public id 'nope'"):
        call_command("generate_traffic", site="nope")


def test_the_last_day_holds_only_its_hours_so_far():
    """END is Nov 20 12:00 UTC, 13:00 in Paris: the last day has had its first 13 hours, a
    share of a day's traffic given by HOUR_WEIGHTS (about a third). Returning visits that would
    fall after the end are not made (they were piled onto the last day, doubling it)."""
    generated = visits(3000)
    per_day = Counter(
        visit.events[0].at.astimezone(ZoneInfo("Europe/Paris")).date() for visit in generated
    )
    last = max(per_day)
    full_days = sorted(count for day, count in per_day.items() if day != last)
    typical = full_days[len(full_days) // 2]
    share = sum(HOUR_WEIGHTS[:13]) / sum(HOUR_WEIGHTS)
    assert per_day[last] < typical * share * 1.5, (per_day[last], typical, share)
    assert all(visit.events[0].at <= END for visit in generated)


def _by_value(site, dimension: str) -> dict[str, int]:
    query = ReportQuery.parse(site_id=site.public_id, timezone=site.timezone, params={})
    found = traffic.breakdown(query, dimension=dimension, limit=100)["results"]
    return {row["value"]: row["visits"] for row in found}


def test_bulk_rows_are_what_ingestion_stores(site):
    """The same visits bulk-loaded into one site and sent through /collect to another give
    the same visits per source, medium and UTM tag: direct traffic is labelled as ingestion
    labels it (never an empty source), and the UTM tags of campaign links reach the reports
    through the ingestion path too."""
    other = cast(Site, SiteFactory(organization=site.organization, timezone=site.timezone))
    generated = list(
        generate_visits(
            days=2, visitors=150, timezone=site.timezone, inventory=AdInventory(()), seed=9
        )
    )
    bulk_load(site_id=site.public_id, retention_days=site.retention_days, visits=iter(generated))
    statuses = send_through_ingest(site_id=other.public_id, visits=iter(generated))
    assert set(statuses) == {"/collect 202"}, statuses
    expected_events = sum(len(visit.events) for visit in generated)

    def stored() -> int:
        return (
            clickhouse.get_client()
            .query(
                "SELECT count() FROM page_events WHERE site_id = {s:String}",
                parameters={"s": other.public_id},
            )
            .result_rows[0][0]
        )

    assert eventually(lambda: stored() == expected_events, timeout=10)
    for dimension in ("sources", "mediums", "utm_sources", "utm_mediums", "utm_campaigns"):
        assert _by_value(site, dimension) == _by_value(other, dimension), dimension
    sources = _by_value(site, "sources")
    assert "" not in sources
    assert sources[DIRECT_SOURCE] == sum(
        1 for visit in generated if not visit.source.referrer and not visit.source.utm_source
    )
    newsletter = sum(1 for visit in generated if visit.source.utm_campaign == "winter-sale")
    assert newsletter > 0
    assert _by_value(other, "utm_campaigns")["winter-sale"] == newsletter
    assert _by_value(other, "utm_mediums")["email"] >= newsletter


def test_app_updates_through_ingestion_are_what_bulk_loading_stores(site):
    """The generated update events pass /collect's validation (every batch accepted whole) and
    give the app release reports the same numbers as the same devices bulk-loaded."""
    out = io.StringIO()
    call_command(
        "generate_traffic",
        site=site.public_id,
        visitors=1,
        days=4,
        app_devices=25,
        seed=5,
        stdout=out,
    )
    answered = dict(re.findall(r"(/[a-z-]+ \d{3}): ([\d,]+)", out.getvalue()))
    assert set(answered) <= {"/collect 202", "/ad-event 200"}, out.getvalue()
    reset_sink()  # flushes what the direct writer still holds
    loaded = cast(Site, SiteFactory(organization=site.organization, timezone=site.timezone))
    devices = list(generate_app_updates(days=4, devices=25, seed=5))
    kinds = Counter(event["type"] for device in devices for event in device.events)
    assert kinds["update_installed"] > kinds["update_failed"] > 0
    bulk_load(site_id=loaded.public_id, retention_days=30, visits=iter(()), app_devices=devices)
    answers = []
    for which in (site, loaded):
        query = ReportQuery.parse(site_id=which.public_id, timezone=which.timezone, params={})
        adoption = app_releases.adoption(query, app=APP, interval="day")
        answers.append(
            (
                {key: value for key, value in adoption.items() if key != "points"},
                app_releases.versions(query, app=APP)["results"],
                app_releases.failures(query, app=APP)["error_code"],
            )
        )
    assert answers[0] == answers[1]
    assert answers[0][0]["installs"] == kinds["update_installed"]
