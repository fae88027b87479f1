"""The dashboard in headless Chromium against the whole application: the numbers it shows are
the query layer's, a click on a row filters everything, tabs load, and the realtime panel is
pushed over SSE."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from analytics.reports import traffic
from analytics.reports.query import ReportQuery
from analytics.traffic_generator import AdInventory, bulk_load, generate_visits
from tests.conftest import CHROMIUM
from tests.helpers import eventually

pytestmark = [
    pytest.mark.browser,
    pytest.mark.clickhouse,
    pytest.mark.usefixtures("clickhouse_schema", "direct_path"),
]


@pytest.fixture
def site_with_traffic(site: Any) -> Any:
    visits = generate_visits(
        days=14, visitors=400, timezone=site.timezone, inventory=AdInventory(((1, 11, 1),)), seed=5
    )
    bulk_load(site_id=site.public_id, retention_days=site.retention_days, visits=visits)
    return site


@pytest.fixture
def signed_in(browser_context: Any, server: str) -> Any:
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    browser_context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": server}])
    return browser_context


@pytest.fixture
def browser_context() -> Any:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        yield context
        browser.close()


def test_dashboard_shows_the_reports_numbers_and_filters_by_clicking(
    signed_in, server, site_with_traffic, tmp_path
):
    site = site_with_traffic
    today = datetime.now(UTC).date()
    start = (today - timedelta(days=13)).isoformat()
    page = signed_in.new_page()
    page.goto(f"{server}/dashboard/{site.public_id}/?from={start}&to={today.isoformat()}")
    visitors = page.locator("[data-metric=Visitors]")
    expected = traffic.overview(
        ReportQuery.parse(
            site_id=site.public_id,
            timezone=site.timezone,
            params={"from": start, "to": today.isoformat()},
        )
    )["period"]
    page.wait_for_function("() => document.querySelector('[data-metric=Visitors]')")
    assert visitors.inner_text().replace(",", "").replace("\u202f", "") == str(expected["visitors"])
    assert page.locator(".nd-graph .u-over").count() == 1  # the graph is drawn

    # A click on a source filters everything by it.
    page.locator(".nd-list", has_text="Sources").locator(
        "tr.nd-clickable", has_text="Google"
    ).first.click()
    page.locator(".nd-chip", has_text="source: Google").wait_for()
    filtered = traffic.overview(
        ReportQuery.parse(
            site_id=site.public_id,
            timezone=site.timezone,
            params={"from": start, "to": today.isoformat(), "source": "Google"},
        )
    )["period"]
    page.wait_for_function(
        "expected => (document.querySelector('[data-metric=Visitors]')?.textContent || '')"
        ".replace(/\\D/g, '') === expected",
        arg=str(filtered["visitors"]),
    )
    assert "source=Google" in page.url  # the state is in the URL

    page.get_by_role("tab", name="Ads").click()
    page.locator("table", has_text="Impressions").first.wait_for()
    page.get_by_role("heading", name="Revenue").wait_for()  # the ad-revenue report answered
    assert page.locator("table", has_text="eCPM").count() == 1
    page.get_by_role("tab", name="Funnels").click()
    page.locator("#nd-funnel table").wait_for()

    # Realtime: a visitor now appears within one push (5 s).
    assert eventually(lambda: page.locator("#nd-live-count").inner_text().isdigit(), timeout=8)
    shot = tmp_path / "dashboard.png"
    page.get_by_role("tab", name="Overview").click()
    page.locator(".nd-chip").click()  # filters are removed by their chip
    page.locator(".nd-chip").wait_for(state="detached")
    page.wait_for_timeout(500)
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("NABORIA_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, settings.BASE_DIR / "docs" / "dashboard.png")
