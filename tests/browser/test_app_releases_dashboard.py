"""The dashboard's "App releases" tab in headless Chromium: its totals and every table show
what the app release reports of the REST API answer for the same parameters (read back from
the page, asked again of the API), an app id typed in narrows every panel to that app, and
the tab has no axe-core violation. NABORIA_UPDATE_SCREENSHOTS=1 copies its screenshot into
docs/."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import pytest
from django.core.cache import cache
from django.test import Client

from analytics.traffic_generator import DEVICES as BROWSERS
from analytics.traffic_generator import AppDevice, bulk_load
from tests.browser.test_dashboard import (
    PANELS,
    assert_accessible,
    screenshot,
    settled,
    shows,
    site_days,
)
from tests.integration.test_app_releases import APP, DEVICES, EXPECTED_ADOPTION

pytestmark = [
    pytest.mark.browser,
    pytest.mark.clickhouse,
    pytest.mark.usefixtures("clickhouse_schema", "direct_path"),
]
PERFORMANCE = {
    "Download speed (Mbps)": "download_speed_mbps",
    "Download duration (ms)": "download_duration_ms",
    "Install duration (ms)": "install_duration_ms",
}


def expected_rows(panel_id: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows a panel should show, from its report's answer."""
    if panel_id == "app-adoption":  # the hours with updates
        return [point for point in body["points"] if point["installs"] or point["failures"]]
    if panel_id == "app-active-devices":
        return body["points"]
    if panel_id.startswith("app-failures-"):
        return body[panel_id.removeprefix("app-failures-")]
    if panel_id == "app-performance":
        return [{"measure": label, **body[key]} for label, key in PERFORMANCE.items()]
    return body["results"]


def assert_release_panels_match_the_api(page: Any, api: Client, site: Any) -> dict[str, Any]:
    panels = page.evaluate(PANELS)
    cache.clear()
    shown = {}
    for panel in panels:
        answer = api.get(
            f"/api/v1/sites/{site.public_id}/reports/{panel['report']}?{panel['query']}"
        )
        assert answer.status_code == 200, (panel["id"], answer.content)
        body = answer.json()
        if panel["cards"]:
            for card in panel["cards"]:
                assert card["value"] == body[card["key"]], card
                assert shows(card["text"], card["value"]), card
            shown["totals"] = {card["key"]: card["value"] for card in panel["cards"]}
            continue
        rows = expected_rows(panel["id"], body)
        assert len(panel["rows"]) == len(rows), panel["id"]
        for cells, row in zip(panel["rows"], rows, strict=True):
            for key, cell in cells.items():
                assert cell["value"] == row[key], (panel["id"], key, cell, row)
                assert shows(cell["text"], cell["value"]), (panel["id"], key, cell)
        shown[panel["id"]] = panel
    return shown


def load_updates(site: Any) -> None:
    """The integration tests' hand-made devices, stored as ingestion stores them (Playwright's
    event loop holds this thread: no in-process /collect here)."""
    phone = next(device for device in BROWSERS if device.os == "Android")
    devices = [AppDevice(f"device-{ip}", phone, "FR", ip, events) for ip, events in DEVICES.items()]
    bulk_load(site_id=site.public_id, retention_days=30, visits=iter(()), app_devices=devices)


def test_the_app_releases_tab_shows_the_apis_numbers(open_context, server, api, site, tmp_path):
    load_updates(site)
    start, end = site_days(site, 2)
    page = open_context().new_page()
    settled(
        page,
        lambda: page.goto(
            f"{server}/dashboard/{site.public_id}/?from={start}&to={end}&tab=releases"
        ),
    )
    shown = assert_release_panels_match_the_api(page, api, site)
    assert {key: shown["totals"][key] for key in EXPECTED_ADOPTION} == EXPECTED_ADOPTION
    assert {
        "app-adoption",
        "app-versions",
        "app-active-devices",
        "app-failures-error_code",
        "app-failures-failure_stage",
        "app-failures-target_version",
        "app-failures-device_model",
        "app-performance",
    } <= set(shown)
    assert len(shown["app-versions"]["rows"]) == 2
    assert_accessible(page, "app releases")
    screenshot(page, tmp_path, "dashboard-app-releases.png")

    # Another app id: every panel asks for it, and shows nothing of this app.
    page.locator("#nd-app").fill("com.example.other")
    settled(page, lambda: page.get_by_role("button", name="Show", exact=True).click())
    shown = assert_release_panels_match_the_api(page, api, site)
    assert shown["totals"]["installs"] == 0
    for panel in page.evaluate(PANELS):
        assert parse_qs(panel["query"])["app"] == ["com.example.other"], panel["id"]

    page.locator("#nd-app").fill(APP)
    settled(page, lambda: page.get_by_role("button", name="Show", exact=True).click())
    assert assert_release_panels_match_the_api(page, api, site)["totals"]["installs"] == 4
