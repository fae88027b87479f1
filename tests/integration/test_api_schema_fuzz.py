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

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
from django.core.management import call_command
from django.test import Client

from ads.models import Ad, Advertiser, Campaign, CampaignStatus, PricingModel
from analytics.api import REPORTS
from analytics.services import segment_create
from analytics.traffic_generator import (
    AdInventory,
    bulk_load,
    generate_app_updates,
    generate_visits,
)
from consent.mirroring import CONSENT_EVENT_COLUMNS
from events.rows import PageRow, clickhouse_time, encoder
from ingest.storage import insert_rows
from naboria import clickhouse
from sites.models import Role
from sites.services import api_token_create, membership_set
from tests.factories import OrganizationFactory, SiteFactory

pytestmark = [
    pytest.mark.clickhouse,
    pytest.mark.usefixtures("clickhouse_schema"),
]

FUZZ_CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.fixture
def api(server: str) -> dict[str, Any]:
    """A site (New York time) with two weeks of generated traffic (its app's updates too), a
    visitor on it now, ads of a priced campaign and consent decisions; its organization's
    token; and another organization's site."""
    organization: Any = OrganizationFactory()
    site: Any = SiteFactory(organization=organization, timezone="America/New_York")
    theirs: Any = SiteFactory(organization=OrganizationFactory())
    advertiser = Advertiser.objects.create(organization=organization, name="Outdoor")
    campaign = Campaign.objects.create(
        advertiser=advertiser,
        name="Winter",
        status=CampaignStatus.ACTIVE,
        pricing=PricingModel.CPM,
        rate=Decimal("2.5"),
    )
    ad = Ad.objects.create(campaign=campaign, name="Banner", width=300, height=250)
    visits = generate_visits(
        days=14,
        visitors=60,
        timezone=site.timezone,
        inventory=AdInventory(((campaign.pk, ad.pk, 1),)),
        seed=17,
    )
    bulk_load(
        site_id=site.public_id,
        retention_days=site.retention_days,
        visits=visits,
        app_devices=generate_app_updates(days=14, devices=40, seed=17),
    )
    _consent_decisions(site.public_id)
    _someone_on_the_site_now(site)
    _, token = api_token_create(organization=organization, name="fuzz")
    segment = segment_create(site=site, name="From France", filters={"country": "FR"})
    return {"server": server, "site": site, "theirs": theirs, "token": token, "segment": segment}


def _someone_on_the_site_now(site: Any) -> None:
    """A pageview a minute ago, for the realtime report."""
    moment = datetime.now(UTC) - timedelta(minutes=1)
    text = clickhouse_time(int(moment.timestamp() * 1000))
    row = PageRow(
        event_id=str(uuid.uuid4()),
        site_id=site.public_id,
        timestamp=text,
        received_at=text,
        event_type="pageview",
        visitor_id="now",
        consent_state="none",
        pathname="/",
        url="https://shop.example/",
        retention_days=site.retention_days,
    )
    insert_rows("page_events", [encoder.encode(row)])


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
        column_names=list(CONSENT_EVENT_COLUMNS),
    )


def _published_schema(server: str) -> dict[str, Any]:
    answer = requests.get(f"{server}/api/schema/", params={"format": "json"}, timeout=30)
    assert answer.status_code == 200
    schema: dict[str, Any] = answer.json()
    return schema


def test_the_schema_is_built_without_warnings(tmp_path: Path) -> None:
    call_command("spectacular", "--validate", "--fail-on-warn", file=str(tmp_path / "api.yaml"))


@pytest.mark.timeout(300)
def test_fuzzed_requests_get_the_answers_the_schema_promises(
    api: dict[str, Any], tmp_path: Path
) -> None:
    """Schemathesis (settings in schemathesis.toml) runs its coverage phase (boundary and
    type-breaking values of every parameter) and its fuzzing phase on every operation."""
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(FUZZ_CONFIG),
            "--no-color",
            "run",
            f"{api['server']}/api/schema/?format=json",
        ],
        cwd=tmp_path,
        env={
            **os.environ,
            "NABORIA_FUZZ_URL": api["server"],
            "NABORIA_FUZZ_SITE": api["site"].public_id,
            "NABORIA_FUZZ_TOKEN": api["token"],
            "NABORIA_FUZZ_SEGMENT": str(api["segment"].pk),
        },
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report
    operations = sum(len(methods) for methods in _published_schema(api["server"])["paths"].values())
    assert f"Tested: {operations}" in report, report


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


def _conforms(published: dict[str, Any], path: str, answer: requests.Response) -> None:
    """The answer has a documented status, headers and content type, and its body (JSON) is
    valid against the documented schema read strictly."""
    responses = published["paths"][path]["get"]["responses"]
    assert str(answer.status_code) in responses, (path, answer.status_code)
    documented = responses[str(answer.status_code)]
    for name, header in documented.get("headers", {}).items():
        if header.get("required") or name in answer.headers:
            jsonschema.validate(answer.headers[name], header["schema"])
    content = documented["content"]
    media_type = answer.headers["Content-Type"].split(";")[0]
    assert media_type in content, (path, media_type)
    if media_type == "application/json":
        strict = _strict({**content[media_type]["schema"], "components": published["components"]})
        jsonschema.validate(answer.json(), strict)


REPORT_PATH = "/api/v1/sites/{public_id}/reports/"
# Parameters every report accepts (the funnel needs its steps; the others ignore them).
BASE_QUERY = {"steps": "/,event:AddToCart", "event": "AddToCart", "key": "product"}


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"compare": "previous", "bots": "include", "sampling": "none"},
        {"interval": "hour", "dimension": "sources", "by": "day", "page_size": "3", "weeks": "3"},
        {"compare": "2020-01-01..2020-01-14", "by": "ad", "dimension": "countries", "page": "2"},
        {"format": "csv"},
    ],
)
def test_every_report_answers_as_its_schema_says(
    api: dict[str, Any], query: dict[str, str]
) -> None:
    published = _published_schema(api["server"])
    headers = {"Authorization": f"Bearer {api['token']}"}
    for name in REPORTS:
        answer = requests.get(
            f"{api['server']}{REPORT_PATH}{name}".format(public_id=api["site"].public_id),
            params={**BASE_QUERY, **query},
            headers=headers,
            timeout=30,
        )
        assert answer.status_code == 200, (name, answer.text)
        _conforms(published, REPORT_PATH + name, answer)
        if not query:  # the data set fills every report, so its rows are checked too
            body, rows_key = answer.json(), REPORTS[name].rows_key
            if rows_key:
                assert body[rows_key], name
            else:
                assert (body.get("period") or body["overview"]["period"])["visits"], name


def test_every_error_and_both_authentications_are_documented(api: dict[str, Any], user: Any):
    """A session (cookie) reads like a token; no credentials or a bad token get the
    documented 401 with its body and the Bearer challenge; another organization's site, an
    Accept header for HTML and a wrong parameter get their documented 404, 406 and 400."""
    published = _published_schema(api["server"])
    site = api["site"]
    assert published["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert published["components"]["securitySchemes"]["cookieAuth"]["in"] == "cookie"
    membership_set(organization=site.organization, user=user, role=Role.ANALYST)
    browser = Client()
    browser.force_login(user)
    cookie = browser.cookies["sessionid"].value
    bearer = {"Authorization": f"Bearer {api['token']}"}
    # A segment of its own: the fuzzing test may have deleted the fixture's.
    segment = segment_create(site=site, name=f"Checked {uuid.uuid4().hex}", filters={"os": "iOS"})
    for path in [*published["paths"]]:
        assert published["paths"][path]["get"]["security"] == [
            {"bearerAuth": []},
            {"cookieAuth": []},
        ]
        url = api["server"] + path.format(public_id=site.public_id, segment_id=segment.pk)
        if path.startswith(REPORT_PATH):
            url += "?steps=/,/thanks"
        calls = [
            ({"cookies": {"sessionid": cookie}}, 200),
            ({}, 401),
            ({"headers": {"Authorization": "Bearer nab_not-a-token"}}, 401),
        ]
        for options, status in calls:
            answer = requests.get(url, timeout=30, **options)
            assert answer.status_code == status, (path, options, answer.text)
            _conforms(published, path, answer)
            if status == 401:
                assert answer.json()["detail"]
                assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        if "{public_id}" in path:
            theirs = api["server"] + path.format(
                public_id=api["theirs"].public_id, segment_id=segment.pk
            )
            answer = requests.get(theirs, headers=bearer, timeout=30)
            assert answer.status_code == 404
            _conforms(published, path, answer)
        answer = requests.get(url, headers={**bearer, "Accept": "text/html"}, timeout=30)
        assert answer.status_code == 406
        _conforms(published, path, answer)
        if path.startswith(REPORT_PATH):
            answer = requests.get(url + "&from=0001-01-01", headers=bearer, timeout=30)
            assert answer.status_code == 400
            assert answer.json()["error"]
            _conforms(published, path, answer)
