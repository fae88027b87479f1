"""Filters through the REST API: saved segments per site (created, listed, applied with
``segment=<id>`` and deleted by whoever reads the site; another organization sees a 404),
filter syntax in query strings, and the 400s of bad input (dates out of range, an unknown
format, a filter a report cannot apply)."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from analytics.models import Segment
from sites.models import Role
from sites.services import api_token_create, membership_set
from tests.factories import OrganizationFactory, SiteFactory
from tests.integration.test_reports_api import pageviews, url

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.clickhouse,
    pytest.mark.usefixtures("clickhouse_schema"),
]


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()


@pytest.fixture
def tenants():
    """My site: an hour ago, visitors v0 on /, v1 on /blog/a, v2 on /blog/b, v3 on /pricing
    (one pageview each). Their site: one visitor on /secret."""
    mine, theirs = OrganizationFactory(), OrganizationFactory()
    my_site = SiteFactory(organization=mine, timezone="Europe/Paris")
    their_site = SiteFactory(organization=theirs)
    pageviews(my_site, "/", "/blog/a", "/blog/b", "/pricing")
    pageviews(their_site, "/secret")
    _, token = api_token_create(organization=mine, name="dashboard")
    _, their_token = api_token_create(organization=theirs, name="theirs")
    return (
        my_site,
        their_site,
        APIClient(HTTP_AUTHORIZATION=f"Bearer {token}"),
        APIClient(HTTP_AUTHORIZATION=f"Bearer {their_token}"),
    )


def segments_url(site, segment_id: int | None = None) -> str:
    tail = f"/{segment_id}" if segment_id is not None else ""
    return f"/api/v1/sites/{site.public_id}/segments{tail}"


def visits(client, site, query: str) -> int:
    answer = client.get(url(site, "overview", query))
    assert answer.status_code == 200, answer.content
    return answer.json()["period"]["visits"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", 4),
        ("path=/blog/*", 2),
        ("path=!/blog/*", 2),
        ("path=~blog", 2),
        ("path=/%7C/pricing", 2),  # "/|/pricing": / or /pricing
        ("entry_page=/pricing", 1),
        ("country=!FR", 4),  # no country at all is not FR
    ],
)
def test_filter_syntax_in_the_query_string(tenants, query, expected):
    mine, _, client, _ = tenants
    assert visits(client, mine, query) == expected


def test_a_saved_segment_is_created_listed_applied_and_deleted(tenants):
    mine, _, client, _ = tenants
    created = client.post(
        segments_url(mine), {"name": "Blog", "filters": {"path": "/blog/*"}}, format="json"
    )
    assert created.status_code == 201, created.content
    segment = created.json()
    assert (segment["name"], segment["filters"]) == ("Blog", {"path": "/blog/*"})
    assert [entry["name"] for entry in client.get(segments_url(mine)).json()] == ["Blog"]

    assert visits(client, mine, f"segment={segment['id']}") == 2
    # The request's own filters add to the segment's (and replace one of the same name).
    assert visits(client, mine, f"segment={segment['id']}&entry_page=/blog/a") == 1
    assert visits(client, mine, f"segment={segment['id']}&path=/pricing") == 1

    assert client.delete(segments_url(mine, segment["id"])).status_code == 204
    assert client.get(segments_url(mine)).json() == []
    gone = client.get(url(mine, "overview", f"segment={segment['id']}"))
    assert gone.status_code == 400
    assert gone.json()["error"] == f"segment: no saved segment '{segment['id']}' on this site"


def test_session_members_manage_segments_of_their_sites(tenants, user):
    mine, _, _, _ = tenants
    membership_set(organization=mine.organization, user=user, role=Role.ANALYST)
    client = APIClient()
    client.force_login(user)
    created = client.post(
        segments_url(mine), {"name": "FR", "filters": {"country": "FR"}}, format="json"
    )
    assert created.status_code == 201
    assert Segment.objects.get(pk=created.json()["id"]).site == mine


def test_another_organization_never_sees_nor_touches_a_segment(tenants):
    mine, theirs, client, their_client = tenants
    segment = client.post(
        segments_url(mine), {"name": "Blog", "filters": {"path": "/blog/*"}}, format="json"
    ).json()
    assert their_client.get(segments_url(mine)).status_code == 404
    assert their_client.get(segments_url(mine, segment["id"])).status_code == 404
    assert their_client.delete(segments_url(mine, segment["id"])).status_code == 404
    assert (
        their_client.post(
            segments_url(mine), {"name": "x", "filters": {"country": "FR"}}, format="json"
        ).status_code
        == 404
    )
    # Their own site does not take my segment's id.
    applied = their_client.get(url(theirs, "overview", f"segment={segment['id']}"))
    assert applied.status_code == 400
    assert "no saved segment" in applied.json()["error"]
    assert Segment.objects.filter(pk=segment["id"]).exists()
    assert client.get(segments_url(theirs)).status_code == 404
    assert client.get(segments_url(mine, 10**30)).status_code == 404
    assert client.delete(segments_url(mine, 10**30)).status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "", "filters": {"country": "FR"}}, "name: from 1 to 100 characters"),
        ({"name": "x"}, "filters: an object of filter name -> value"),
        ({"name": "x", "filters": {}}, "filters: an object of filter name -> value"),
        ({"name": "x", "filters": {"country": 3}}, "filters: an object of filter name -> value"),
        ({"name": "x", "filters": {"shoe": "42"}}, "unknown filter 'shoe'"),
        ({"name": "x", "filters": {"path": "~"}}, "path: ~ needs a text to look for"),
        ({"name": "x", "filters": {"property": "plan"}}, "property: use key:value"),
    ],
)
def test_a_wrong_segment_is_a_400_with_the_reason(tenants, body, message):
    mine, _, client, _ = tenants
    answer = client.post(segments_url(mine), body, format="json")
    assert answer.status_code == 400
    assert message in answer.json()["error"]
    assert not Segment.objects.filter(site=mine).exists()


@pytest.mark.parametrize("raw", [b'{"name": "x",', b"\xff\xfe not utf-8"])
def test_a_body_that_is_not_json_is_a_400_with_the_reason(tenants, raw):
    mine, _, client, _ = tenants
    answer = client.post(segments_url(mine), raw, content_type="application/json")
    assert answer.status_code == 400
    assert "JSON parse error" in answer.json()["error"]
    assert not Segment.objects.filter(site=mine).exists()


def test_segment_names_are_unique_per_site(tenants):
    mine, _, client, _ = tenants
    body = {"name": "Blog", "filters": {"path": "/blog/*"}}
    assert client.post(segments_url(mine), body, format="json").status_code == 201
    again = client.post(segments_url(mine), body, format="json")
    assert again.status_code == 400
    assert again.json()["error"] == "name: the site already has a segment 'Blog'"


@pytest.mark.parametrize(
    ("report", "query", "message"),
    [
        ("overview", "from=9999-12-31&to=9999-12-31", "from: '9999-12-31' is out of range"),
        ("overview", "from=0001-01-01", "from: '0001-01-01' is out of range"),
        ("timeseries", "to=9999-12-31", "to: '9999-12-31' is out of range"),
        ("overview", "compare=0001-01-01..0001-01-07", "compare: '0001-01-01' is out of range"),
        ("overview", "format=xml", "format: json or csv, not 'xml'"),
        ("breakdown", "format=pdf", "format: json or csv, not 'pdf'"),
        ("ads", "source=Google", "source: the ads report cannot apply this filter"),
        ("consent", "path=/", "path: the consent report cannot apply this filter"),
        ("ad-revenue", "country=FR", "country: the ad-revenue report cannot apply this filter"),
        ("realtime", "path=/", "path: the realtime report cannot apply this filter"),
        ("overview", "segment=abc", "segment: no saved segment 'abc' on this site"),
        ("overview", "segment=" + "9" * 30, "segment: no saved segment"),
        ("overview", "segment=\u0663", "segment: no saved segment"),  # an Arabic-Indic 3
        ("overview", "path=~", "path: ~ needs a text to look for"),
    ],
)
def test_bad_input_is_a_400_with_the_reason(tenants, report, query, message):
    mine, _, client, _ = tenants
    answer = client.get(url(mine, report, query))
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"] == message or message in answer.json()["error"]


def test_known_formats_still_answer(tenants):
    mine, _, client, _ = tenants
    assert client.get(url(mine, "overview", "format=json")).status_code == 200
    csv = client.get(url(mine, "breakdown", "format=csv"))
    assert csv.status_code == 200
    assert csv["Content-Type"].startswith("text/csv")
