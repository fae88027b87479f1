"""Region and city end to end: /collect and /ad-event from addresses picked from the shipped
database (tests/geo_samples.py) -> stored rows with their country, region and city and never the
address -> the regions and cities breakdowns and the region / city filters of every report,
against counts made here from what was sent, with visits computed live and from refreshed
session facts; the REST API and its schema."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rest_framework.test import APIClient

from analytics import session_facts
from analytics.reports import ads_and_consent, conversions, traffic
from analytics.reports.query import Period, ReportQuery, filters_from
from ingest.geo import Location
from ingest.sinks import reset_sink
from naboria import clickhouse
from sites.services import api_token_create
from tests.factories import OrganizationFactory, SiteFactory
from tests.geo_samples import samples
from tests.tracking_client import TrackingClient, delivered_ad_event
from tests.unit.test_enrichment import WINDOWS_CHROME

pytestmark = [
    pytest.mark.clickhouse,
    pytest.mark.django_db,
    pytest.mark.usefixtures("clickhouse_schema", "direct_path"),
]


def send(path: str, body: dict[str, Any], ip: str) -> Any:
    return TrackingClient().post(
        path,
        data=json.dumps(body),
        content_type="application/json",
        HTTP_USER_AGENT=WINDOWS_CHROME,
        HTTP_ORIGIN="https://example.com",
        REMOTE_ADDR=ip,
    )


def stored(query: str, **parameters: object) -> list[tuple[Any, ...]]:
    reset_sink()  # flushes what the direct writer still holds
    return clickhouse.get_client().query(query, parameters=parameters).result_rows


@pytest.fixture(params=["live", "refreshed"])
def visited(request: pytest.FixtureRequest) -> tuple[Any, list[tuple[str, Location, int]]]:
    """One visitor per sample address (cookieless: the address makes the visitor), each with
    its own number of pageviews and one ad impression; (site, [(ip, location, pageviews)])."""
    found = samples()
    visits = [
        (*found.first, 3),
        (*found.same_region, 1),
        (*found.other_region, 2),
        (*found.ipv6, 1),
    ]
    site: Any = SiteFactory()
    for index, (ip, _, pageviews) in enumerate(visits):
        now = int(time.time() * 1000)
        events = [  # a second apart, in order
            {
                "type": "pageview",
                "url": f"https://example.com/{index}/{n}",
                "ts": now - 9000 + n * 1000,
            }
            for n in range(pageviews)
        ]
        body = {"site": site.public_id, "sent_at": now, "events": events}
        answer = send("/collect", body, ip)
        assert answer.status_code == 202, answer.content
        impression = delivered_ad_event(
            site=site.public_id, impression=f"i{index}-{uuid.uuid4().hex}"
        )
        assert send("/ad-event", impression, ip).status_code == 200
    reset_sink()
    if request.param == "refreshed":
        session_facts.refresh()
    return site, visits


def query(site: Any, **params: str) -> ReportQuery:
    today = datetime.now(UTC).date()  # and yesterday: the events are sent a few seconds back
    return ReportQuery(
        site_id=site.public_id,
        period=Period(today - timedelta(days=1), today, "UTC"),
        filters=filters_from(params),
        exact=True,
    )


def test_rows_carry_the_location_and_never_the_address(visited):
    site, visits = visited
    for table in ("page_events", "ad_events"):
        places = stored(
            f"SELECT DISTINCT country, region, city FROM {table} WHERE site_id = {{s:String}}",  # noqa: S608
            s=site.public_id,
        )
        assert {Location(*place) for place in places} == {location for _, location, _ in visits}
        every_value = stored(
            f"SELECT arrayStringConcat(arrayMap(x -> toString(x), [*]), '|') FROM {table}"  # noqa: S608
            " WHERE site_id = {s:String}",
            s=site.public_id,
        )
        assert every_value
        for ip, _, _ in visits:
            assert all(ip not in value for (value,) in every_value)
    facts = stored(
        "SELECT arrayStringConcat(arrayMap(x -> toString(x), [*]), '|') FROM session_facts"
        " WHERE site_id = {s:String}",
        s=site.public_id,
    )
    for ip, _, _ in visits:
        assert all(ip not in value for (value,) in facts)


def test_regions_and_cities_breakdowns_match_what_was_sent(visited):
    site, visits = visited
    regions: Counter[tuple[str, str]] = Counter()
    cities: Counter[tuple[str, str, str]] = Counter()
    for _, place, pageviews in visits:
        regions[place.region, place.country] += pageviews
        cities[place.city, place.country, place.region] += pageviews
    answer = traffic.breakdown(query(site), dimension="regions", limit=100)
    assert {(row["value"], row["country"]): row["pageviews"] for row in answer["results"]} == dict(
        regions
    )
    answer = traffic.breakdown(query(site), dimension="cities", limit=100)
    assert {
        (row["value"], row["country"], row["region"]): row["pageviews"] for row in answer["results"]
    } == dict(cities)
    assert sum(row["visitors"] for row in answer["results"]) == len(visits)


def test_region_and_city_filters_keep_whole_visits_in_every_report(visited):
    site, visits = visited
    first, neighbour = visits[0][1], visits[1][1]
    in_region = [views for _, place, views in visits if place.region == first.region]
    in_city = [views for _, place, views in visits if place.city == first.city]
    assert len(in_region) >= 2  # the first two samples share it

    def numbers(**params: str) -> tuple[int, int]:
        overview = traffic.overview(query(site, **params))["period"]
        return overview["visitors"], overview["pageviews"]

    assert numbers(region=first.region) == (len(in_region), sum(in_region))
    assert numbers(city=first.city) == (len(in_city), sum(in_city))
    # Negated: every other visit, whole.
    everything = sum(views for *_, views in visits)
    assert numbers(city=f"!{first.city}") == (len(visits) - len(in_city), everything - sum(in_city))
    # With the country and region, one place however its name repeats elsewhere.
    assert numbers(country=first.country, region=first.region, city=first.city)[0] == 1
    # The graph and the top pages read the same visits.
    points = traffic.timeseries(query(site, city=first.city), interval="day")["points"]
    assert sum(point["pageviews"] for point in points) == sum(in_city)
    pages = traffic.breakdown(query(site, city=first.city), dimension="pages", limit=100)
    assert {f"/0/{n}" for n in range(visits[0][2])} <= {row["value"] for row in pages["results"]}
    entries = traffic.entry_exit_pages(query(site, city=neighbour.city))["results"]
    assert "/1/0" in [row["page"] for row in entries]
    assert "/0/0" not in [row["page"] for row in entries]
    funnel = conversions.funnel(query(site, region=first.region), steps=["/0/0", "/0/1"])
    assert [step["visits"] for step in funnel["steps"]] == [1, 1]
    funnel = conversions.funnel(query(site, region=f"!{first.region}"), steps=["/0/0", "/0/1"])
    assert [step["visits"] for step in funnel["steps"]] == [0, 0]
    # Ads: one impression per visitor, filtered by where its viewer was.
    for params, expected in (
        ({"city": first.city}, len(in_city)),
        ({"region": first.region}, len(in_region)),
    ):
        ads = ads_and_consent.ad_performance(query(site, **params))["results"]
        assert sum(row["impressions"] for row in ads) == expected


def test_rest_api_answers_and_lists_the_new_breakdowns_and_filters(visited):
    site, visits = visited
    other: Any = SiteFactory(organization=OrganizationFactory())
    _, token = api_token_create(organization=site.organization, name="geo")
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {token}")
    first = visits[0][1]
    base = f"/api/v1/sites/{site.public_id}/reports/breakdown"
    answer = client.get(base, {"dimension": "cities", "region": first.region, "sampling": "none"})
    assert answer.status_code == 200, answer.content
    assert {row["value"] for row in answer.json()["results"]} == {
        place.city for _, place, _ in visits if place.region == first.region
    }
    assert client.get(base, {"dimension": "towns"}).status_code == 400
    exported = client.get(base, {"dimension": "cities", "format": "csv"})
    assert exported.content.decode().splitlines()[0] == (
        "value,visitors,visits,pageviews,country,region"
    )
    # Another organization's site is not the token's to read.
    theirs = f"/api/v1/sites/{other.public_id}/reports/breakdown"
    assert client.get(theirs, {"dimension": "cities"}).status_code == 404
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"]["/api/v1/sites/{public_id}/reports/breakdown"]["get"]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}
    assert {"region", "city"} <= set(parameters)
    assert {"regions", "cities"} <= set(parameters["dimension"]["schema"]["enum"])
