"""The reports REST API: per-site permissions (one organization never reads another's data),
token and session authentication, clear 400s, pagination, CSV export, caching (realtime
uncached) and the OpenAPI schema with its interactive docs."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from events.rows import PageRow, clickhouse_time, encoder
from ingest.storage import insert_rows
from sites.models import Role
from sites.services import api_token_create, membership_set
from tests.factories import OrganizationFactory, SiteFactory

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.clickhouse,
    pytest.mark.usefixtures("clickhouse_schema"),
]


def pageviews(site, *paths: str, minutes_ago: float = 60) -> None:
    moment = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    text = clickhouse_time(int(moment.timestamp() * 1000))
    insert_rows(
        "page_events",
        [
            encoder.encode(
                PageRow(
                    event_id=str(uuid.uuid4()),
                    site_id=site.public_id,
                    timestamp=text,
                    received_at=text,
                    event_type="pageview",
                    visitor_id=f"v{index}",
                    consent_state="none",
                    pathname=path,
                    url=f"https://shop.example{path}",
                    retention_days=30,
                )
            )
            for index, path in enumerate(paths)
        ],
    )


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()


@pytest.fixture
def tenants():
    mine, theirs = OrganizationFactory(), OrganizationFactory()
    my_site = SiteFactory(organization=mine, timezone="Europe/Paris")
    their_site = SiteFactory(organization=theirs)
    pageviews(my_site, "/", "/", "/pricing")
    pageviews(their_site, "/secret")
    _, token = api_token_create(organization=mine, name="dashboard")
    return my_site, their_site, APIClient(HTTP_AUTHORIZATION=f"Bearer {token}")


def url(site, report: str, query: str = "") -> str:
    return f"/api/v1/sites/{site.public_id}/reports/{report}{'?' + query if query else ''}"


def test_token_reads_its_sites_reports(tenants):
    mine, _, client = tenants
    answer = client.get(url(mine, "overview"))
    assert answer.status_code == 200
    assert answer.json()["period"]["pageviews"] == 3
    assert answer.json()["site"] == mine.public_id


def test_the_dashboard_report_in_one_request(tenants):
    mine, _, client = tenants
    answer = client.get(url(mine, "dashboard"), {"page_size": 3})
    assert answer.status_code == 200
    body = answer.json()
    assert body["overview"]["period"]["pageviews"] == 3
    assert set(body["breakdowns"]) == {"pages", "sources", "countries", "devices", "browsers"}
    assert all(len(entry["results"]) <= 3 for entry in body["breakdowns"].values())
    assert client.get(url(mine, "dashboard"), {"format": "csv"}).content.startswith(b"visitors,")


@pytest.mark.parametrize(
    "report", ["overview", "dashboard", "breakdown", "realtime", "ads", "ad-revenue", "consent"]
)
def test_another_organizations_site_is_a_404(tenants, report):
    _, theirs, client = tenants
    answer = client.get(url(theirs, report))
    assert answer.status_code == 404
    assert "secret" not in answer.content.decode()


def test_session_user_reads_the_sites_of_their_memberships(tenants, user):
    mine, theirs, _ = tenants
    membership_set(organization=mine.organization, user=user, role=Role.ANALYST)
    client = APIClient()
    client.force_login(user)
    assert client.get(url(mine, "overview")).json()["period"]["pageviews"] == 3
    assert client.get(url(theirs, "overview")).status_code == 404
    assert APIClient().get(url(mine, "overview")).status_code in {401, 403}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=yesterday", "from: 'yesterday' is not a date (YYYY-MM-DD)"),
        ("interval=minute", "interval: hour, day, week or month"),
        ("dimension=shoe_size", "dimension: one of"),
        ("page_size=0", "page_size: a whole number from 1 to 1000"),
        ("page=%C2%B2", "page: a whole number from 1 to 100000"),  # "²" is a digit to Python
        ("from=0001-01-01&to=0001-01-02", "out of range (1970-01-01 to 2099-12-31)"),
        ("from=9999-12-30&to=9999-12-31", "out of range (1970-01-01 to 2099-12-31)"),
        ("from=1970-01-01&to=1970-01-31&compare=previous", "compare: '1969-12-01' is out of"),
        ("format=xml", "format: json or csv"),
        ("format=csv&dimension=shoe_size", "dimension: one of"),  # errors are JSON
    ],
)
def test_bad_parameters_are_a_400_with_the_reason(tenants, query, message):
    mine, _, client = tenants
    report = "timeseries" if "interval" in query else "breakdown"
    answer = client.get(url(mine, report, query))
    assert answer.status_code == 400
    assert message in answer.json()["error"]


@pytest.mark.parametrize("report", ["overview", "dashboard", "timeseries", "retention", "ads"])
@pytest.mark.parametrize(
    "query",
    [
        "from=1970-01-01&to=1970-01-31",
        "from=2099-12-01&to=2099-12-31&interval=hour&compare=previous",
    ],
)
def test_the_first_and_last_days_allowed_are_answered(tenants, report, query):
    mine, _, client = tenants
    answer = client.get(url(mine, report, query))
    assert answer.status_code == 200, answer.content


def test_breakdown_pages_through_results(tenants):
    mine, _, client = tenants
    first = client.get(url(mine, "breakdown", "dimension=pages&page_size=1")).json()
    assert [row["value"] for row in first["results"]] == ["/"]
    assert first["previous"] is None
    second = client.get(first["next"]).json()
    assert [row["value"] for row in second["results"]] == ["/pricing"]
    assert second["previous"] is not None


def test_csv_export(tenants):
    mine, _, client = tenants
    answer = client.get(url(mine, "breakdown", "dimension=pages&format=csv"))
    assert answer["Content-Type"].startswith("text/csv")
    assert f"{mine.public_id}-breakdown.csv" in answer["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.content.decode())))
    assert [(row["value"], row["pageviews"]) for row in rows] == [("/", "2"), ("/pricing", "1")]


def test_reports_are_cached_briefly_but_realtime_never(tenants):
    mine, _, client = tenants
    assert client.get(url(mine, "overview")).json()["period"]["pageviews"] == 3
    assert client.get(url(mine, "realtime")).json()["visitors"] == 0  # an hour ago
    pageviews(mine, "/new", minutes_ago=1)
    assert client.get(url(mine, "overview")).json()["period"]["pageviews"] == 3  # cached
    assert client.get(url(mine, "realtime")).json()["visitors"] == 1


def test_openapi_schema_and_interactive_docs(tenants):
    _, _, client = tenants
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/sites/{public_id}/reports/funnel" in paths
    parameters = {
        p["name"] for p in paths["/api/v1/sites/{public_id}/reports/funnel"]["get"]["parameters"]
    }
    assert {"from", "to", "steps", "country"} <= parameters
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content


def test_dashboard_page_is_for_members_of_the_sites_organization(tenants, user):
    mine, theirs, _ = tenants
    user.is_staff = True
    user.save()
    membership_set(organization=mine.organization, user=user, role=Role.ANALYST)
    client = APIClient()
    client.force_login(user)
    page = client.get(f"/dashboard/{mine.public_id}/")
    assert page.status_code == 200
    assert f'data-site="{mine.public_id}"' in page.content.decode()
    assert client.get(f"/dashboard/{theirs.public_id}/").status_code == 404
