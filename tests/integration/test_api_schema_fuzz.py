"""The OpenAPI schema at /api/schema/ tells the truth about the API.

- Schemathesis generates requests for every operation from the schema itself (valid ones and
  ones that break it), sends them to the whole application served over HTTP with a real site,
  its API token and two weeks of traffic, and checks each answer: never a 5xx, a documented
  status, a documented content type, a body valid against the documented schema, documented
  headers. Bad input must be a documented 4xx with a message.
- Every report's real answer, under the common parameters, validates against a strict reading
  of its schema (no undocumented field), so a field added to a report and not to
  analytics.api_schema fails here.
- drf-spectacular builds the schema without a warning (an undescribed view or field).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
import schemathesis
from django.core.management import call_command
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ads.models import Ad, Advertiser, Campaign, CampaignStatus, PricingModel
from analytics.api import REPORTS
from analytics.traffic_generator import AdInventory, bulk_load, generate_visits
from naboria import clickhouse
from sites.models import Role
from sites.services import api_token_create, membership_set
from tests.factories import OrganizationFactory, SiteFactory

pytestmark = [
    pytest.mark.clickhouse,
    pytest.mark.usefixtures("clickhouse_schema"),
]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Requests per operation and generation mode: 16 operations x (positive + negative) keep the
# test within a minute; derandomized, so that a run in CI is the run a developer repeats.
EXAMPLES = 12


@pytest.fixture
def api(server: str) -> dict[str, Any]:
    """A site (New York time) with two weeks of generated traffic, ads of a priced campaign
    and consent decisions; its organization's token; and another organization's site."""
    organization = OrganizationFactory()
    site = SiteFactory(organization=organization, timezone="America/New_York")
    theirs = SiteFactory(organization=OrganizationFactory())
    advertiser = Advertiser.objects.create(organization=organization, name="Outdoor")
    campaign = Campaign.objects.create(
        advertiser=advertiser,
        name="Winter",
        status=CampaignStatus.ACTIVE,
        pricing=PricingModel.CPM,
        rate="2.5",
    )
    ad = Ad.objects.create(campaign=campaign, name="Banner", width=300, height=250)
    visits = generate_visits(
        days=14,
        visitors=60,
        timezone=site.timezone,
        inventory=AdInventory(((campaign.pk, ad.pk, 1),)),
        seed=17,
    )
    bulk_load(site_id=site.public_id, retention_days=site.retention_days, visits=visits)
    _consent_decisions(site.public_id)
    _, token = api_token_create(organization=organization, name="fuzz")
    return {"server": server, "site": site, "theirs": theirs, "token": token}


def _consent_decisions(site_id: str) -> None:
    moment = datetime.now(UTC) - timedelta(days=1)
    clickhouse.get_client().insert(
        "consent_events",
        [
            [number, site_id, moment, "browser", granted, denied, 1, "en", "Chrome", "FR"]
            for number, (granted, denied) in enumerate(
                [(["analytics", "necessary"], ["ads"]), (["necessary"], ["analytics", "ads"])],
                start=uuid.uuid4().int % 10**9,
            )
        ],
        column_names=[
            "record_id",
            "site_id",
            "recorded_at",
            "visitor_kind",
            "granted",
            "denied",
            "banner_version",
            "language",
            "user_agent_family",
            "country",
        ],
    )


def _published_schema(server: str) -> dict[str, Any]:
    answer = requests.get(f"{server}/api/schema/", params={"format": "json"}, timeout=30)
    assert answer.status_code == 200
    schema: dict[str, Any] = answer.json()
    return schema


def test_the_schema_is_built_without_warnings(tmp_path: Path) -> None:
    call_command("spectacular", "--validate", "--fail-on-warn", file=str(tmp_path / "api.yaml"))


@pytest.mark.timeout(300)
def test_fuzzed_requests_get_the_answers_the_schema_promises(api: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_dict(_published_schema(api["server"]))
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {api['token']}"
    # Most requests read the caller's site; some another organization's, some none (404s).
    sites = st.sampled_from(
        [api["site"].public_id] * 6 + [api["theirs"].public_id, "no-such-site"]
    )
    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 2 + len(REPORTS)
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode), site=sites)
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def fuzz(case: Any, site: str) -> None:
                if "public_id" in (case.path_parameters or {}):
                    case.path_parameters["public_id"] = site
                response = case.call(base_url=api["server"], session=session)
                print("FUZZ", response.status_code, response.request.url[-150:])
                case.validate_response(response, checks=CHECKS)

            try:
                fuzz()
            except Exception as error:  # every operation's failures, not the first one's
                failures.append(f"{operation.label} ({mode}): {error}")
    assert not failures, "\n\n".join(failures)


def _strict(schema: Any) -> Any:
    """The schema with no undocumented field allowed in any object."""
    if isinstance(schema, dict):
        strict = {key: _strict(value) for key, value in schema.items()}
        if "properties" in strict:
            strict.setdefault("additionalProperties", False)
        return strict
    if isinstance(schema, list):
        return [_strict(value) for value in schema]
    return schema


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"compare": "previous", "bots": "include", "sampling": "none"},
        {"interval": "hour", "dimension": "sources", "by": "day", "page_size": "3"},
        {"steps": "/,event:Signup", "event": "Signup", "key": "plan", "weeks": "3"},
        {"format": "csv"},
    ],
)
def test_every_report_answers_as_its_schema_says(api: dict[str, Any], query: dict[str, str]):
    published = _published_schema(api["server"])
    components = _strict(published["components"])
    headers = {"Authorization": f"Bearer {api['token']}"}
    for name in REPORTS:
        path = f"/api/v1/sites/{{public_id}}/reports/{name}"
        answer = requests.get(
            api["server"] + path.format(public_id=api["site"].public_id),
            params=query,
            headers=headers,
            timeout=30,
        )
        assert answer.status_code == 200, (name, answer.text)
        media_type = answer.headers["Content-Type"].split(";")[0]
        documented = published["paths"][path]["get"]["responses"]["200"]["content"]
        assert media_type in documented, (name, media_type)
        if media_type == "text/csv":
            assert answer.text.splitlines(), name  # a header line at least
            continue
        jsonschema.validate(
            answer.json(), {**documented[media_type]["schema"], "components": components}
        )


def test_every_authentication_answer_is_documented(api: dict[str, Any], user: Any) -> None:
    """A session (cookie) reads like a token; no credentials or a bad token get the
    documented 401 with its body and the Bearer challenge."""
    published = _published_schema(api["server"])
    site = api["site"]
    membership_set(organization=site.organization, user=user, role=Role.ANALYST)
    browser = Client()
    browser.force_login(user)
    cookie = browser.cookies["sessionid"].value
    url = f"{api['server']}/api/v1/sites/{site.public_id}/reports/overview"
    security = published["paths"]["/api/v1/sites/{public_id}/reports/overview"]["get"]["security"]
    assert security == [{"bearerAuth": []}, {"cookieAuth": []}]
    assert published["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert requests.get(url, cookies={"sessionid": cookie}, timeout=30).status_code == 200
    for headers in ({}, {"Authorization": "Bearer nab_not-a-token"}):
        answer = requests.get(url, headers=headers, timeout=30)
        assert answer.status_code == 401
        assert answer.json()["detail"]
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
