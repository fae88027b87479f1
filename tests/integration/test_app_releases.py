"""App release analytics end to end: update lifecycle events sent to /collect (direct path into
ClickHouse), validated per event, stored once however often a batch is retried, left out of
visits, and read back by the five app release reports of the REST API, whose numbers are
checked against a hand-made data set and against plain SQL on the raw table. Tenancy: a
second organization's site and token."""

from __future__ import annotations

import json
import math
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient

from events.schemas import UPDATE_EVENT_TYPES
from ingest.sinks import reset_sink
from naboria import clickhouse
from sites.services import api_token_create
from tests.factories import OrganizationFactory, SiteFactory
from tests.tracking_client import TrackingClient
from tests.unit.test_enrichment import ANDROID_PHONE

pytestmark = [
    pytest.mark.clickhouse,
    pytest.mark.django_db,
    pytest.mark.usefixtures("clickhouse_schema", "direct_path"),
]
APP = "com.example.shop"
NOW = datetime.now(UTC)
# Four hours back from the start of this hour: every event is in the past, and in the period.
T0 = NOW.replace(minute=0, second=0, microsecond=0) - timedelta(hours=4)


def at(hours: float = 0, minutes: float = 0) -> int:
    return int((T0 + timedelta(hours=hours, minutes=minutes)).timestamp() * 1000)


def update(kind: str, ts: int, current: str = "1.0.0", target: str = "1.1.0", **payload: Any):
    return {
        "type": kind,
        "id": str(uuid.uuid4()),
        "ts": ts,
        "current_version": current,
        "target_version": target,
        **payload,
    }


# Each device's events (a device is an IP here: without consent, the server's anonymous id).
DEVICES: dict[str, list[dict[str, Any]]] = {
    "81.2.69.10": [
        update("update_started", at(0, 1), device_model="Pixel 8", battery_level=80),
        update("update_downloading", at(0, 2), progress=50, download_speed_mbps=12.5),
        update(
            "update_downloaded",
            at(0, 3),
            package_size_bytes=20_000_000,
            download_duration_ms=4000,
            download_speed_mbps=40,
        ),
        update("update_installing", at(0, 4), progress=10),
        update("update_installed", at(0, 10), install_duration_ms=3000),
    ],
    "81.2.69.11": [
        update("update_started", at(1, 0)),
        update(
            "update_failed",
            at(1, 1),
            error_code="E_DISK_FULL",
            failure_stage="download",
            error_message="no space left",
            device_model="Pixel 7",
            storage_available_mb=12,
        ),
    ],
    "81.2.69.12": [
        update("update_started", at(1, 2)),
        # No speed: computed from size and duration (10 MB in 8 s: 10 Mbps).
        update(
            "update_downloaded", at(1, 3), package_size_bytes=10_000_000, download_duration_ms=8000
        ),
        update("update_installed", at(1, 5), install_duration_ms=5000),
        update(
            "update_failed",
            at(2, 20),
            current="1.1.0",
            target="1.2.0",
            error_code="E_SIGNATURE",
            failure_stage="verify",
            device_model="Pixel 8",
        ),
    ],
    "81.2.69.13": [
        update("update_started", at(2, 0)),
        update("update_installed", at(2, 30), install_duration_ms=7000),
        update("rollback_started", at(3, 0), current="1.1.0", rollback_reason="crash loop"),
        # After the rollback the device runs 1.0.0 again: its current version.
        update("rollback_completed", at(3, 2), rollback_duration_ms=900),
    ],
    "81.2.69.14": [update("update_cancelled", at(3, 1), cancellation_reason="user")],
    "81.2.69.15": [
        update(
            "update_installed",
            at(3, 10),
            current="0.9.0",
            target="1.0.0",
            os="HarmonyOS",
            os_version="4.2",
        )
    ],
}
# What the data set holds, counted by hand.
EXPECTED_ADOPTION = {
    "updates_started": 4,
    "installs": 4,
    "failures": 2,
    "cancellations": 1,
    "rollbacks": 1,
    "devices_updated": 4,
    "success_rate": 66.67,
}
EXPECTED_VERSIONS = [
    {"version": "1.0.0", "devices": 4, "percentage": 66.67},
    {"version": "1.1.0", "devices": 2, "percentage": 33.33},
]
EXPECTED_HOURS = {0: (1, 0), 1: (1, 1), 2: (1, 1), 3: (1, 0)}  # hour after T0: installs, failures


def post(body: object, *, ip: str, user_agent: str = ANDROID_PHONE):
    return TrackingClient().post(
        "/collect",
        data=json.dumps(body),
        content_type="application/json",
        HTTP_USER_AGENT=user_agent,
        REMOTE_ADDR=ip,
    )


def send_all(site, devices: dict[str, list[dict[str, Any]]] = DEVICES) -> None:
    for ip, events in devices.items():
        answer = post({"site": site.public_id, "app": APP, "events": events}, ip=ip)
        assert answer.status_code == 202, answer.content
        assert answer.json() == {"accepted": len(events), "rejected": []}
    reset_sink()  # flushes what the direct writer still holds


def sql(query: str, **parameters: object) -> list[tuple]:
    return clickhouse.get_client().query(query, parameters=parameters).result_rows


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()


@pytest.fixture
def tenants():
    mine, theirs = OrganizationFactory(), OrganizationFactory()
    my_site = SiteFactory(organization=mine, timezone="UTC")
    their_site = SiteFactory(organization=theirs, timezone="UTC")
    _, token = api_token_create(organization=mine, name="releases")
    return my_site, their_site, APIClient(HTTP_AUTHORIZATION=f"Bearer {token}")


def report(client, site, name: str, **params: object) -> dict[str, Any]:
    period = {"from": (NOW - timedelta(days=1)).date().isoformat(), "to": NOW.date().isoformat()}
    answer = client.get(f"/api/v1/sites/{site.public_id}/reports/{name}", {**period, **params})
    assert answer.status_code == 200, answer.content
    return answer.json()


def test_update_events_are_stored_with_their_payload(site):
    send_all(site)
    stored = sql(
        "SELECT event_type, app_id, url, os, properties FROM page_events"
        " WHERE site_id = {s:String} ORDER BY timestamp, event_type",
        s=site.public_id,
    )
    assert [row[0] for row in stored] == [
        event["type"]
        for event in sorted(
            (event for events in DEVICES.values() for event in events), key=lambda e: e["ts"]
        )
    ]
    assert {row[1] for row in stored} == {APP}
    assert {row[2] for row in stored} == {f"app://{APP}/"}
    downloaded = next(row for row in stored if row[0] == "update_downloaded")
    assert downloaded[4] == {
        "current_version": "1.0.0",
        "target_version": "1.1.0",
        "package_size_bytes": "20000000",
        "download_duration_ms": "4000",
        "download_speed_mbps": "40.0",
    }
    failed = next(row for row in stored if row[0] == "update_failed")
    assert failed[4]["error_code"] == "E_DISK_FULL"
    assert failed[4]["failure_stage"] == "download"
    assert failed[4]["storage_available_mb"] == "12"
    # The OS the device reports wins over the user agent's; without one, the agent's stays.
    assert (stored[-1][0], stored[-1][3]) == ("update_installed", "HarmonyOS")
    assert stored[0][3] == "Android"


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"progress": 101}, "Expected `int` <= 100 - at `$.progress`"),
        ({"progress": -1}, "Expected `int` >= 0 - at `$.progress`"),
        ({"progress": "50"}, "Expected `int`, got `str` - at `$.progress`"),
        ({"progress": 5, "battery_level": 120}, "Expected `int` <= 100 - at `$.battery_level`"),
        ({"progress": 5, "colour": "red"}, "Object contains unknown field `colour`"),
        ({"progress": 5, "current_version": ""}, "length >= 1 - at `$.current_version`"),
        ({}, "Object missing required field `progress`"),
    ],
)
def test_a_bad_update_event_is_refused_alone_with_its_reason(site, event, message):
    good = update("update_started", at(0))
    bad = {**update("update_downloading", at(0)), **event}
    answer = post({"site": site.public_id, "app": APP, "events": [good, bad]}, ip="81.2.69.20")
    assert answer.status_code == 202
    assert answer.json()["accepted"] == 1
    [rejected] = answer.json()["rejected"]
    assert rejected["index"] == 1
    assert message in rejected["error"]


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (
            update("update_installed", at(0), install_duration_ms=-5),
            "Expected `int` >= 0 - at `$.install_duration_ms`",
        ),
        (
            update("update_failed", at(0), error_code="E1", failure_stage="reboot"),
            "Invalid enum value 'reboot' - at `$.failure_stage`",
        ),
        (update("update_failed", at(0), failure_stage="install"), "missing required field"),
        (update("update_downloaded", at(0), download_speed_mbps=-1.0), ">= 0"),
    ],
)
def test_a_batch_of_bad_update_events_is_a_400_naming_each(site, event, message):
    answer = post({"site": site.public_id, "app": APP, "events": [event]}, ip="81.2.69.20")
    assert answer.status_code == 400
    assert message in answer.json()["rejected"][0]["error"]


def test_update_events_need_an_app(site):
    answer = post(
        {"site": site.public_id, "events": [update("update_started", at(0))]}, ip="1.1.1.1"
    )
    assert answer.status_code == 400
    assert "update events need the batch's `app`" in answer.json()["rejected"][0]["error"]


def test_retried_batches_are_counted_once(tenants):
    mine, _, client = tenants
    send_all(mine)
    send_all(mine)  # every batch again, as an app retrying after a lost answer would
    [(stored, distinct)] = sql(
        "SELECT count(), uniqExact(event_id) FROM page_events"
        " WHERE site_id = {s:String} AND event_type IN {types:Array(String)}",
        s=mine.public_id,
        types=list(UPDATE_EVENT_TYPES),
    )
    sent = sum(len(events) for events in DEVICES.values())
    assert stored == distinct == sent
    adoption = report(client, mine, "app-adoption")
    assert {key: adoption[key] for key in EXPECTED_ADOPTION} == EXPECTED_ADOPTION


def test_adoption_per_hour(tenants):
    mine, their_site, client = tenants
    send_all(mine)
    send_all(their_site)  # another organization's: never in mine
    body = report(client, mine, "app-adoption", app=APP)
    assert {key: body[key] for key in EXPECTED_ADOPTION} == EXPECTED_ADOPTION
    points = {point["date"]: point for point in body["points"]}
    assert len(points) == 48  # every hour of the two days, site time
    for hour, (installs, failures) in EXPECTED_HOURS.items():
        point = points[(T0 + timedelta(hours=hour)).strftime("%Y-%m-%d %H:00")]
        assert (point["installs"], point["failures"]) == (installs, failures)
        assert point["success_rate"] == round(100 * installs / (installs + failures), 2)
    assert sum(point["installs"] for point in body["points"]) == 4
    # The same numbers, counted by plain SQL on the raw table.
    [(installs, failures)] = sql(
        "SELECT countIf(event_type = 'update_installed'), countIf(event_type = 'update_failed')"
        " FROM page_events WHERE site_id = {s:String} AND app_id = {a:String}",
        s=mine.public_id,
        a=APP,
    )
    assert (installs, failures) == (body["installs"], body["failures"])
    by_day = report(client, mine, "app-adoption", interval="day")
    assert sum(point["installs"] for point in by_day["points"]) == 4


def test_versions_active_devices_failures_and_performance(tenants):
    mine, their_site, client = tenants
    send_all(mine)
    send_all(their_site)
    screen = {"type": "pageview", "url": f"app://{APP}/home", "ts": at(3, 5)}
    assert (
        post({"site": mine.public_id, "app": APP, "events": [screen]}, ip="81.2.69.16").status_code
        == 202
    )
    reset_sink()

    versions = report(client, mine, "app-versions", app=APP)
    assert versions["total_devices"] == 6
    assert versions["results"] == EXPECTED_VERSIONS

    active = report(client, mine, "app-active-devices", app=APP)
    assert active["devices"] == 7  # six updating devices and one that only showed a screen
    [(independent,)] = sql(
        "SELECT uniqExact(visitor_id) FROM page_events WHERE site_id = {s:String}",
        s=mine.public_id,
    )
    assert active["devices"] == independent
    by_day = {point["date"]: point["devices"] for point in active["points"]}
    assert len(by_day) == 2
    if (T0 + timedelta(hours=4)).date() == T0.date():  # all of them on one day
        assert by_day[T0.date().isoformat()] == 7

    failures = report(client, mine, "app-failures", app=APP)
    assert (failures["failures"], failures["devices"]) == (2, 2)
    assert failures["error_code"] == [
        {"value": "E_DISK_FULL", "failures": 1, "devices": 1},
        {"value": "E_SIGNATURE", "failures": 1, "devices": 1},
    ]
    assert [row["value"] for row in failures["failure_stage"]] == ["download", "verify"]
    assert failures["target_version"] == [
        {"value": "1.1.0", "failures": 1, "devices": 1, "failure_rate": 25.0},
        {"value": "1.2.0", "failures": 1, "devices": 1, "failure_rate": 100.0},
    ]
    assert [row["value"] for row in failures["device_model"]] == ["Pixel 7", "Pixel 8"]

    performance = report(client, mine, "app-performance", app=APP)
    assert performance["download_speed_mbps"] == percentiles([40.0, 10.0])
    assert performance["download_duration_ms"] == percentiles([4000, 8000])
    assert performance["install_duration_ms"] == percentiles([3000, 5000, 7000])
    assert [row["version"] for row in performance["versions"]] == ["1.0.0", "1.1.0"]
    assert performance["versions"][0]["install_duration_ms"]["samples"] == 0  # none measured
    assert performance["versions"][1]["install_duration_ms"] == percentiles([3000, 5000, 7000])


def percentiles(values: list[float]) -> dict[str, Any]:
    """The exact percentiles as the reports define them: the measured value at rank
    floor(level * n) of the sorted values (0-based, the last one at most)."""
    ordered = sorted(values)
    return {
        "samples": len(values),
        **{
            f"p{round(level * 100)}": round(
                float(ordered[min(len(ordered) - 1, math.floor(level * len(ordered)))]), 2
            )
            for level in (0.5, 0.9, 0.99)
        },
    }


def test_update_events_belong_to_no_visit(tenants):
    mine, _, client = tenants
    device = "81.2.69.30"
    events = [
        {"type": "pageview", "url": f"app://{APP}/home", "ts": at(1, 0)},
        update("update_started", at(0, 50)),  # before the screen: would open the visit
        update("update_installed", at(1, 20), install_duration_ms=100),  # would lengthen it
    ]
    assert (
        post({"site": mine.public_id, "app": APP, "events": events}, ip=device).status_code == 202
    )
    reset_sink()
    overview = report(client, mine, "overview")["period"]
    assert overview["visits"] == 1
    assert overview["visit_duration_seconds"] == 0
    assert overview["bounce_rate"] == 100
    assert sql(
        "SELECT event_type FROM page_event_visits WHERE site_id = {s:String}", s=mine.public_id
    ) == [("pageview",)]


@pytest.mark.parametrize(
    "name",
    ["app-adoption", "app-versions", "app-active-devices", "app-failures", "app-performance"],
)
def test_another_organizations_site_is_a_404(tenants, name):
    _, theirs, client = tenants
    send_all(theirs)
    answer = client.get(f"/api/v1/sites/{theirs.public_id}/reports/{name}")
    assert answer.status_code == 404
    assert "1.1.0" not in answer.content.decode()


@pytest.mark.parametrize(
    ("name", "query", "message"),
    [
        ("app-adoption", "interval=week", "interval: hour or day"),
        ("app-versions", "app=not%20an%20app", "app: an app id"),
        ("app-failures", "path=/pricing", "path: the app-failures report cannot apply"),
        ("app-performance", "goal=Signup", "goal: the app-performance report cannot apply"),
        ("app-failures", "page_size=0", "page_size: a whole number from 1 to 1000"),
    ],
)
def test_bad_parameters_are_a_400(tenants, name, query, message):
    mine, _, client = tenants
    answer = client.get(f"/api/v1/sites/{mine.public_id}/reports/{name}?{query}")
    assert answer.status_code == 400
    assert message in answer.json()["error"]


def test_filters_the_reports_apply(tenants):
    mine, _, client = tenants
    send_all(mine)
    assert report(client, mine, "app-adoption", os="Android")["installs"] == 3
    assert report(client, mine, "app-adoption", os="HarmonyOS")["installs"] == 1
    assert report(client, mine, "app-adoption", os="iOS")["installs"] == 0
    assert report(client, mine, "app-versions", app="com.example.other")["total_devices"] == 0


def test_the_schema_lists_the_reports(tenants):
    _, _, client = tenants
    answer = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    schema = answer.json()
    for name in ("app-adoption", "app-versions", "app-active-devices", "app-failures"):
        operation = schema["paths"][f"/api/v1/sites/{{public_id}}/reports/{name}"]["get"]
        assert "app" in {parameter["name"] for parameter in operation["parameters"]}
    assert "/api/v1/sites/{public_id}/reports/app-performance" in schema["paths"]


def test_the_javascript_sdk_knows_the_same_update_events():
    source = (settings.BASE_DIR / "sdk" / "js" / "src" / "client.js").read_text()
    declared = re.search(r"UPDATE_EVENTS = Object\.freeze\(\[(.*?)\]\)", source, re.S)
    assert declared is not None
    assert tuple(re.findall(r"'(\w+)'", declared[1])) == UPDATE_EVENT_TYPES
