"""The dashboard in headless Chromium against the whole application: every panel of every tab
shows the numbers the REST API answers for the same parameters (read back from the page and
asked again of the API), a click on a row filters everything, comparison with any period
colours a change by whether it is good news, dates are the site's, the page refreshes
itself, works on a phone, has no axe-core violation, and the realtime panel is pushed over
SSE. NABORIA_UPDATE_SCREENSHOTS=1 copies its screenshots into docs/."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import Client

from analytics.services import segment_create
from analytics.traffic_generator import AdInventory, bulk_load, generate_visits
from events.rows import PageRow, clickhouse_time, encoder
from ingest.storage import insert_rows
from tests.factories import SiteFactory
from tests.helpers import eventually

pytestmark = [
    pytest.mark.browser,
    pytest.mark.clickhouse,
    pytest.mark.usefixtures("clickhouse_schema", "direct_path"),
]
AXE = settings.BASE_DIR / "tracker" / "node_modules" / "axe-core" / "axe.min.js"
DOCS = settings.BASE_DIR / "docs"
# The list of rows of each report's answer (the others answer "results").
ROWS = {"funnel": "steps", "retention": "cohorts"}
# Every panel of the open tab: the report and query it names, its cards and table rows with
# each cell's value (data-value, the API's JSON) and text.
PANELS = """() => Array.from(document.querySelectorAll('#nd-tab [data-report]')).map(panel => ({
  id: panel.dataset.panel || panel.dataset.report,
  report: panel.dataset.report,
  query: panel.dataset.query,
  points: panel.dataset.points ? JSON.parse(panel.dataset.points) : null,
  cards: Array.from(panel.querySelectorAll('[data-metric]')).map(card => ({
    key: card.dataset.metric, value: JSON.parse(card.dataset.value), text: card.textContent,
    change: card.parentElement.querySelector('.nd-change')?.className || null,
    changeText: card.parentElement.querySelector('.nd-change')?.textContent || null,
  })),
  rows: Array.from(panel.querySelectorAll('tbody tr')).filter(tr => tr.querySelector('[data-key]'))
    .map(tr => Object.fromEntries(Array.from(tr.querySelectorAll('td[data-key]'))
      .map(td => [td.dataset.key, {value: JSON.parse(td.dataset.value), text: td.textContent}]))),
}))"""


@pytest.fixture
def site_with_traffic(site: Any) -> Any:
    visits = generate_visits(
        days=14, visitors=400, timezone=site.timezone, inventory=AdInventory(((1, 11, 1),)), seed=5
    )
    bulk_load(site_id=site.public_id, retention_days=site.retention_days, visits=visits)
    return site


def settled(page: Any, action: Callable[[], Any]) -> None:
    """Does ``action`` and waits until the open tab has rendered again."""
    before = page.evaluate("() => document.getElementById('nd-tab')?.dataset.loaded || ''")
    action()
    page.wait_for_function(
        "before => (document.getElementById('nd-tab')?.dataset.loaded || '') !== before",
        arg=before,
    )


def shows(text: str, value: Any) -> bool:
    """Whether a cell's text is the value as the dashboard formats it."""
    if value is None:
        return text == "\N{EN DASH}"  # the dashboard's "no value"
    if isinstance(value, str):
        return text == (value or "(none)")
    if text.endswith(" s"):  # a duration: "1 min 5 s" or "42 s"
        minutes = re.match(r"(\d+) min (\d+) s$", text)
        shown = int(minutes[1]) * 60 + int(minutes[2]) if minutes else int(text[:-2])
        # Rounded half up, as JavaScript's Math.round does (Python's round(92.5) is 92).
        return shown == math.floor(value + 0.5)
    return float(text.replace(",", "").rstrip("%")) == value


def assert_panels_match_the_api(
    page: Any, api: Client, site: Any, only: str = "", **expected: str
) -> list:
    """Every panel of the open tab (or the one with id ``only``) against the API's answer for
    the panel's parameters (asked afresh: the cache is cleared), which must include
    ``expected``."""
    panels = [panel for panel in page.evaluate(PANELS) if panel["id"] == (only or panel["id"])]
    assert panels, "no panel"
    cache.clear()
    for panel in panels:
        params = parse_qs(panel["query"], keep_blank_values=True)
        for name, value in expected.items():
            assert params.get(name) == [value], (panel["id"], name, params)
        answer = api.get(
            f"/api/v1/sites/{site.public_id}/reports/{panel['report']}?{panel['query']}"
        )
        assert answer.status_code == 200, (panel["id"], answer.content)
        body = answer.json()
        if panel["points"] is not None:  # the graph
            assert panel["points"] == body["points"], panel["id"]
            continue
        if panel["cards"]:
            for card in panel["cards"]:
                assert card["value"] == body["period"][card["key"]], (panel["id"], card)
                assert shows(card["text"], card["value"]), card
            continue
        rows = body[ROWS.get(panel["report"], "results")]
        assert len(panel["rows"]) == len(rows), panel["id"]
        for shown, row in zip(panel["rows"], rows, strict=True):
            for key, cell in shown.items():
                wanted = row["retention"][int(key[1:])] if re.fullmatch(r"r\d+", key) else row[key]
                assert cell["value"] == wanted, (panel["id"], key, cell, row)
                assert shows(cell["text"], cell["value"]), (panel["id"], key, cell)
    return panels


def assert_accessible(page: Any, where: str) -> None:
    """No axe-core violation on the page as it is (axe-core from tracker/node_modules)."""
    assert AXE.exists(), "axe-core is missing: `make tracker` (npm ci) installs it"
    if not page.evaluate("() => Boolean(window.axe)"):
        page.add_script_tag(path=str(AXE))
    violations = page.evaluate(
        """() => axe.run(document).then(result => result.violations.map(v => ({
             id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ')),
           })))"""
    )
    assert violations == [], f"{where}: {json.dumps(violations, indent=1)}"


def screenshot(page: Any, tmp_path: Path, name: str, *, full_page: bool = True) -> None:
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=full_page)
    if os.environ.get("NABORIA_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, DOCS / name)


def site_days(site: Any, days: int) -> tuple[str, str]:
    today = datetime.now(ZoneInfo(site.timezone)).date()
    return (today - timedelta(days=days - 1)).isoformat(), today.isoformat()


def test_every_panel_of_every_tab_shows_the_apis_numbers(
    open_context, server, api, site_with_traffic, tmp_path
):
    site = site_with_traffic
    start, end = site_days(site, 14)
    page = open_context().new_page()
    settled(
        page,
        lambda: page.goto(f"{server}/dashboard/{site.public_id}/?from={start}&to={end}"),
    )
    panels = assert_panels_match_the_api(page, api, site, **{"from": start, "to": end})
    shown = {panel["id"] for panel in panels}
    assert {
        "overview",
        "pages",
        "entry-pages",
        "exit-pages",
        "sources",
        "mediums",
        "utm_sources",
        "utm_mediums",
        "utm_campaigns",
        "utm_terms",
        "utm_contents",
        "countries",
        "devices",
        "browsers",
        "operating_systems",
    } <= shown
    assert all(panel["rows"] for panel in panels if panel["id"] in {"pages", "utm_campaigns"})
    assert "timeseries" in shown
    assert page.locator(".nd-graph .u-over").count() == 1  # the graph is drawn
    # with the comparison period's visitors (the previous 14 days: no traffic)
    assert page.locator(".nd-graph .u-legend", has_text="Visitors (comparison)").count() == 1
    assert_accessible(page, "overview")
    screenshot(page, tmp_path, "dashboard.png")

    # A click on a source filters every panel by it; its chip removes it.
    settled(
        page,
        lambda: page.locator(
            "[data-panel=sources] tr.nd-clickable", has_text="Google"
        ).first.click(),
    )
    assert "source=Google" in page.url  # the state is in the URL
    assert_panels_match_the_api(page, api, site, source="Google")
    settled(page, lambda: page.get_by_role("button", name="Remove filter source is Google").click())
    assert page.locator(".nd-filter").count() == 0

    settled(page, lambda: page.get_by_role("tab", name="Goals & engagement").click())
    panels = assert_panels_match_the_api(page, api, site, **{"from": start, "to": end})
    found = {panel["id"]: panel["rows"] for panel in panels}
    assert found["goals"]
    assert found["outbound-links"]
    assert found["downloads"]
    assert found["engagement"]
    # A property of a custom event: chosen in the form, kept in the URL.
    page.locator("#nd-prop-event").select_option("Signup")
    page.locator("#nd-prop-key").fill("plan")
    page.get_by_role("button", name="Show values").click()
    page.locator("[data-panel=properties] tbody td").first.wait_for()
    assert "prop_event=Signup" in page.url
    assert "prop_key=plan" in page.url
    assert_panels_match_the_api(page, api, site, only="properties", event="Signup", key="plan")
    assert_accessible(page, "goals")
    screenshot(page, tmp_path, "dashboard-goals.png")

    settled(page, lambda: page.get_by_role("tab", name="Retention").click())
    (retention,) = assert_panels_match_the_api(page, api, site, weeks="8")
    assert retention["rows"]
    assert_accessible(page, "retention")

    settled(page, lambda: page.get_by_role("tab", name="Funnels").click())
    page.locator("#nd-steps").fill("/,pricing")  # refused by the API: its message shows
    page.get_by_role("button", name="Show").click()
    page.locator("[data-panel=funnel] .nd-error", has_text="neither a path").wait_for()
    page.locator("#nd-steps").fill("/,/products,/cart")
    page.get_by_role("button", name="Show").click()
    page.wait_for_function(
        "() => new URLSearchParams(document.querySelector('[data-panel=funnel]')?.dataset.query)"
        ".get('steps') === '/,/products,/cart'"
    )
    assert_panels_match_the_api(page, api, site, steps="/,/products,/cart")
    assert "steps=%2F%2C%2Fproducts%2C%2Fcart" in page.url
    settled(page, lambda: page.reload())  # the steps come back from the URL
    assert page.locator("#nd-steps").input_value() == "/,/products,/cart"
    # A wildcard step: any product page (no page is literally "/products/*").
    page.locator("#nd-steps").fill("/,/products/*,/cart")
    page.get_by_role("button", name="Show").click()
    page.wait_for_function(
        "() => new URLSearchParams(document.querySelector('[data-panel=funnel]')?.dataset.query)"
        ".get('steps') === '/,/products/*,/cart'"
    )
    (funnel,) = assert_panels_match_the_api(page, api, site, steps="/,/products/*,/cart")
    assert funnel["rows"][1]["visits"]["value"] > 0
    assert_accessible(page, "funnel")

    settled(page, lambda: page.get_by_role("tab", name="Ads").click())
    panels = assert_panels_match_the_api(page, api, site)
    assert {panel["id"] for panel in panels} == {
        "ad-revenue",
        "ads-campaign",
        "ads-ad",
        "ads-placement",
        "ads-day",
    }
    assert page.locator("[data-panel=ads-campaign] th", has_text="Completion").count() == 1
    assert_accessible(page, "ads")
    # Each table downloads its report as CSV.
    link = page.locator("[data-panel=ads-campaign] a.nd-csv").get_attribute("href")
    download = page.request.get(server + link)
    assert download.status == 200
    assert download.headers["content-type"].startswith("text/csv")
    lines = download.text().splitlines()
    assert lines[0].startswith("campaign,impressions,viewable_impressions")
    assert len(lines) == 1 + page.locator("[data-panel=ads-campaign] tbody tr").count()

    settled(page, lambda: page.get_by_role("tab", name="Consent").click())
    assert_panels_match_the_api(page, api, site)
    assert_accessible(page, "consent")

    # Realtime: pushed within one push (5 s), the API's count.
    def live_count_is_the_apis() -> bool:
        shown = page.locator("#nd-live-count").inner_text()
        answer = api.get(f"/api/v1/sites/{site.public_id}/reports/realtime").json()
        return shown.isdigit() and int(shown) == answer["visitors"]

    assert eventually(live_count_is_the_apis, timeout=8)


def pageview(site: Any, moment: datetime, visitor: str, path: str = "/", **extra: Any) -> bytes:
    at = clickhouse_time(int(moment.timestamp() * 1000))
    return encoder.encode(
        PageRow(
            event_id=str(uuid.uuid4()),
            site_id=site.public_id,
            timestamp=at,
            received_at=at,
            event_type="pageview",
            visitor_id=visitor,
            consent_state="none",
            pathname=path,
            url=f"https://shop.example{path}",
            retention_days=400,
            **extra,
        )
    )


# The filters each panel of the open tab says it does not apply (data-ignored), by panel.
IGNORED = """() => Object.fromEntries(Array.from(document.querySelectorAll('#nd-tab [data-panel]'))
  .map(panel => [panel.dataset.panel, panel.querySelector('.nd-note')?.dataset.ignored || null]))"""


def card_values(page: Any) -> dict[str, Any]:
    return {
        card["key"]: card["value"]
        for panel in page.evaluate(PANELS)
        if panel["id"] == "overview"
        for card in panel["cards"]
    }


def url_filters(page: Any) -> dict[str, list[str]]:
    return {
        name: values
        for name, values in parse_qs(urlsplit(page.url).query, keep_blank_values=True).items()
        if name in {"country", "region", "city", "path", "source", "utm_term", "utm_content"}
    }


def test_filter_bar_negation_several_values_contains_and_segments(
    open_context, server, api, site_with_traffic, tmp_path
):
    """Generated traffic plus three hand-made visits with UTM tags (the generator makes none):
    t1 shoes/banner, t2 shoes/video, t3 boots/banner. So the UTM terms panel shows shoes 2
    visitors, boots 1; UTM contents banner 2, video 1. A visit has one country, so the visits
    of country X, of "is not X", and together must add up to all visits; "is not X or Y" keeps
    all visits but those of X and Y (the countries panel's visits)."""
    site = site_with_traffic
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    tags = [("t1", "shoes", "banner"), ("t2", "shoes", "video"), ("t3", "boots", "banner")]
    insert_rows(
        "page_events",
        [
            pageview(site, hour_ago, visitor, "/", utm_term=term, utm_content=content)
            for visitor, term, content in tags
        ],
    )
    elsewhere = segment_create(site=SiteFactory(), name="Elsewhere", filters={"country": "DE"})
    start, end = site_days(site, 14)
    page = open_context().new_page()
    settled(page, lambda: page.goto(f"{server}/dashboard/{site.public_id}/?from={start}&to={end}"))
    panels = {panel["id"]: panel for panel in assert_panels_match_the_api(page, api, site)}
    visits_of = {
        row["value"]["value"]: row["visits"]["value"] for row in panels["countries"]["rows"]
    }
    for panel_id, counted in (
        ("utm_terms", [("shoes", 2), ("boots", 1)]),
        ("utm_contents", [("banner", 2), ("video", 1)]),
    ):
        tagged = [
            (row["value"]["value"], row["visitors"]["value"])
            for row in panels[panel_id]["rows"]
            if row["value"]["value"]  # the generated visits carry no term nor content
        ]
        assert tagged == counted, panel_id
    total = card_values(page)["visits"]
    first, second = list(visits_of)[:2]

    # A click on a country filters by it; the filter bar then turns it into "is not".
    settled(
        page,
        lambda: page.locator("[data-panel=countries] tr.nd-clickable").first.click(),
    )
    assert url_filters(page) == {"country": [first]}
    assert card_values(page)["visits"] == visits_of[first]
    settled(page, lambda: page.locator("#nd-operator-0").select_option("not"))
    assert url_filters(page) == {"country": [f"!{first}"]}
    assert_panels_match_the_api(page, api, site, country=f"!{first}")
    assert card_values(page)["visits"] == total - visits_of[first]

    # Another value: "is not X or Y".
    page.get_by_label("Another value of country (or)").fill(second)
    settled(
        page, lambda: page.get_by_role("button", name="Add the value to the country filter").click()
    )
    assert url_filters(page) == {"country": [f"!{first}|{second}"]}
    assert_panels_match_the_api(page, api, site, country=f"!{first}|{second}")
    assert card_values(page)["visits"] == total - visits_of[first] - visits_of[second]
    assert page.get_by_role("group", name=f"Filter country is not {first} or {second}").count() == 1

    # A "contains" filter typed in the filter bar.
    page.locator("#nd-filter-name").select_option("path")
    page.locator("#nd-filter-operator").select_option("contains")
    page.locator("#nd-filter-value").fill("product")
    settled(page, lambda: page.get_by_role("button", name="Add filter").click())
    expected = {"country": [f"!{first}|{second}"], "path": ["~product"]}
    assert url_filters(page) == expected
    assert_panels_match_the_api(page, api, site, path="~product")
    assert 0 < card_values(page)["visits"] < total - visits_of[first] - visits_of[second]
    assert_accessible(page, "filter bar")
    screenshot(page, tmp_path, "dashboard-filters.png", full_page=False)
    settled(page, lambda: page.reload())  # the filters come back from the URL
    assert url_filters(page) == expected
    country = page.get_by_role("group", name=f"Filter country is not {first} or {second}")
    assert country.get_by_role("combobox").input_value() == "not"

    # Ads and consent get only the filters they apply, and say which they do not.
    settled(page, lambda: page.get_by_role("tab", name="Ads").click())
    ads = {panel["id"]: panel for panel in assert_panels_match_the_api(page, api, site)}
    for panel_id, panel in ads.items():
        sent = parse_qs(panel["query"], keep_blank_values=True)
        applied = {} if panel_id == "ad-revenue" else expected
        assert {name: sent[name] for name in expected if name in sent} == applied, panel_id
    assert page.evaluate(IGNORED) == {
        "ad-revenue": "path country",  # ad revenue applies no filter
        "ads-campaign": None,
        "ads-ad": None,
        "ads-placement": None,
        "ads-day": None,
    }
    assert (
        "Not applied to this report: path contains product"
        in page.locator("[data-panel=ad-revenue] .nd-note").inner_text()
    )
    assert_accessible(page, "ads with filters")
    settled(page, lambda: page.get_by_role("tab", name="Consent").click())
    (consent,) = assert_panels_match_the_api(page, api, site, country=f"!{first}|{second}")
    assert "path" not in parse_qs(consent["query"])
    assert page.evaluate(IGNORED) == {"consent": "path"}
    assert_accessible(page, "consent with filters")
    settled(page, lambda: page.get_by_role("tab", name="Overview").click())

    # Saved segments: save the filters, clear them, apply the segment, delete it.
    segments_url = f"/api/v1/sites/{site.public_id}/segments"
    page.locator("#nd-segment-name").fill("Elsewhere but products")
    page.get_by_role("button", name="Save filters as segment").click()
    page.get_by_role("status").filter(has_text="saved").wait_for()
    (saved,) = api.get(segments_url).json()
    assert saved["filters"] == {"country": f"!{first}|{second}", "path": "~product"}
    options = page.locator("#nd-segment option").all_inner_texts()
    assert options == ["Choose a saved segment…", "Elsewhere but products"]  # not another site's
    assert elsewhere.name not in options
    for _ in range(2):
        settled(page, lambda: page.locator(".nd-chip").first.click())
    assert url_filters(page) == {}
    settled(page, lambda: page.locator("#nd-segment").select_option(label=saved["name"]))
    assert url_filters(page) == expected
    assert_panels_match_the_api(page, api, site, country=f"!{first}|{second}", path="~product")
    page.get_by_role("button", name="Delete segment").click()
    page.get_by_role("status").filter(has_text="deleted").wait_for()
    assert api.get(segments_url).json() == []
    assert page.locator("#nd-segment option").count() == 1

    # The filter bar on a phone: nothing wider than the screen, no axe-core violation.
    phone = open_context(width=390, height=844, is_mobile=True, has_touch=True).new_page()
    settled(phone, lambda: phone.goto(page.url))
    overflow = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    assert phone.evaluate(overflow) <= 0
    assert_accessible(phone, "phone filter bar")


def test_changes_against_any_period_are_coloured_by_whether_they_are_good(
    open_context, server, api, site
):
    """New York site. The comparison range Nov 2-8 (not the previous period): 4 visitors,
    one of them bouncing (25 %), the others viewing 2 pages: 7 pageviews. The period
    Nov 16-22: 6 visitors, 3 bouncing (50 %), 9 pageviews. So visitors +50 % (good: green),
    bounce rate +100 % (bad: red), pageviews +28.6 %."""
    site.timezone = "America/New_York"
    site.save()
    noon = datetime(2026, 11, 4, 17, tzinfo=UTC)  # Nov 4 12:00 in New York
    before = [pageview(site, noon, "a0")]
    for number in range(1, 4):
        before += [
            pageview(site, noon + timedelta(hours=number), f"a{number}"),
            pageview(site, noon + timedelta(hours=number, minutes=1), f"a{number}", "/x"),
        ]
    later = noon + timedelta(days=14)
    after = [pageview(site, later + timedelta(hours=number), f"b{number}") for number in range(3)]
    for number in range(3, 6):
        after += [
            pageview(site, later + timedelta(hours=number), f"b{number}"),
            pageview(site, later + timedelta(hours=number, minutes=1), f"b{number}", "/x"),
        ]
    insert_rows("page_events", before + after)
    page = open_context().new_page()
    settled(
        page,
        lambda: page.goto(
            f"{server}/dashboard/{site.public_id}/"
            "?from=2026-11-16&to=2026-11-22&compare=2026-11-02..2026-11-08"
        ),
    )
    assert page.locator("#nd-compare").input_value() == "custom"
    (cards,) = assert_panels_match_the_api(
        page, api, site, only="overview", compare="2026-11-02..2026-11-08"
    )
    by_key = {card["key"]: card for card in cards["cards"]}
    assert by_key["visitors"]["value"] == 6
    assert by_key["bounce_rate"]["value"] == 50.0
    assert "nd-good" in by_key["visitors"]["change"]
    assert by_key["visitors"]["changeText"] == "▲ 50% (better)"
    assert "nd-bad" in by_key["bounce_rate"]["change"]
    assert by_key["bounce_rate"]["changeText"] == "▲ 100% (worse)"
    assert by_key["pageviews"]["changeText"] == "▲ 28.6% (better)"
    assert page.locator(".nd-good").first.evaluate("e => getComputedStyle(e).color") == (
        "rgb(26, 127, 55)"
    )
    assert page.locator(".nd-bad").first.evaluate("e => getComputedStyle(e).color") == (
        "rgb(180, 35, 24)"
    )
    # Back to the previous period (Nov 9-15: nothing, so no change to show).
    settled(page, lambda: page.locator("#nd-compare").select_option("previous"))
    assert "compare=previous" in page.url
    assert page.locator(".nd-change").count() == 0
    # A custom range, chosen in the page: it starts as the previous period, then edited.
    settled(page, lambda: page.locator("#nd-compare").select_option("custom"))
    assert "compare=2026-11-09..2026-11-15" in page.url
    settled(page, lambda: page.locator("#nd-compare-from").fill("2026-11-02"))
    settled(page, lambda: page.locator("#nd-compare-to").fill("2026-11-08"))
    assert "compare=2026-11-02..2026-11-08" in page.url
    assert page.locator("[data-metric=visitors] ~ .nd-change").text_content() == "▲ 50% (better)"


def test_dates_are_the_sites_not_the_browsers_or_utc(open_context, server, site):
    """At 2026-12-07 20:00 UTC it is Dec 7 noon in the browser (Los Angeles) and already
    Dec 8 10:00 on the site (Kiritimati, UTC+14): "Today" is Dec 8, and the default 30 days
    end on Dec 8."""
    site.timezone = "Pacific/Kiritimati"
    site.save()
    page = open_context(timezone_id="America/Los_Angeles").new_page()
    page.clock.install(time=datetime(2026, 12, 7, 20, tzinfo=UTC))
    settled(page, lambda: page.goto(f"{server}/dashboard/{site.public_id}/"))
    query = parse_qs(urlsplit(page.url).query)
    assert (query["from"], query["to"]) == (["2026-11-09"], ["2026-12-08"])
    settled(page, lambda: page.get_by_role("button", name="Today").click())
    query = parse_qs(urlsplit(page.url).query)
    assert (query["from"], query["to"]) == (["2026-12-08"], ["2026-12-08"])
    assert page.get_by_role("button", name="Today").get_attribute("aria-pressed") == "true"
    settled(page, lambda: page.get_by_role("button", name="7 days").click())
    query = parse_qs(urlsplit(page.url).query)
    assert (query["from"], query["to"]) == (["2026-12-02"], ["2026-12-08"])


def test_cards_and_graph_refresh_themselves(open_context, server, site):
    page = open_context().new_page()
    page.clock.install()
    start, end = site_days(site, 1)
    insert_rows("page_events", [pageview(site, datetime.now(UTC) - timedelta(minutes=3), "x")])
    settled(page, lambda: page.goto(f"{server}/dashboard/{site.public_id}/?from={start}&to={end}"))
    visitors = page.locator("[data-metric=visitors]")
    assert visitors.inner_text() == "1"
    insert_rows("page_events", [pageview(site, datetime.now(UTC) - timedelta(minutes=2), "y")])
    cache.clear()  # the API's answers are cached for as long as the refresh interval
    settled(page, lambda: page.clock.run_for(61_000))
    assert visitors.inner_text() == "2"


def test_usable_on_a_phone(open_context, server, site_with_traffic, tmp_path):
    site = site_with_traffic
    start, end = site_days(site, 14)
    page = open_context(width=390, height=844, is_mobile=True, has_touch=True).new_page()
    settled(
        page,
        lambda: page.goto(f"{server}/dashboard/{site.public_id}/?from={start}&to={end}"),
    )
    overflow = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    assert page.evaluate(overflow) <= 0  # nothing wider than the phone
    cards = page.locator(".nd-card").all()
    assert cards[0].bounding_box()["width"] < 195  # two cards a row
    assert_accessible(page, "phone overview")
    screenshot(page, tmp_path, "dashboard-phone.png", full_page=False)
    for tab in ("Goals & engagement", "Retention", "Funnels", "Ads", "Consent"):
        settled(page, page.get_by_role("tab", name=tab).click)
        assert page.evaluate(overflow) <= 0, tab
        assert_accessible(page, f"phone {tab}")


def test_places_drill_down_from_country_to_region_to_city(open_context, server, api, site):
    """Four visitors: p1 Paris and p2 Versailles (FR, Île-de-France), p3 Toulouse (FR,
    Occitanie), p4 Paris (US, Texas). The two Parises are rows of their own; a click on FR
    shows France's regions and cities only, a click on its Paris filters by country, region
    and city, so Paris (Texas) stays out. The footer credits the shipped database."""
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    places = [
        ("p1", "FR", "Île-de-France", "Paris"),
        ("p2", "FR", "Île-de-France", "Versailles"),
        ("p3", "FR", "Occitanie", "Toulouse"),
        ("p4", "US", "Texas", "Paris"),
    ]
    insert_rows(
        "page_events",
        [
            pageview(site, hour_ago, visitor, "/", country=country, region=region, city=city)
            for visitor, country, region, city in places
        ],
    )
    today = site_days(site, 1)[1]
    page = open_context().new_page()
    settled(
        page, lambda: page.goto(f"{server}/dashboard/{site.public_id}/?from={today}&to={today}")
    )
    credit = page.get_by_role("link", name="IP Geolocation by DB-IP")
    assert credit.get_attribute("href") == "https://db-ip.com"
    panels = {panel["id"]: panel for panel in assert_panels_match_the_api(page, api, site)}

    def where(panel: dict[str, Any], *keys: str) -> set[tuple[str, ...]]:
        return {tuple(row[key]["value"] for key in keys) for row in panel["rows"]}

    assert where(panels["cities"], "value", "country", "region") == {
        (city, country, region) for _, country, region, city in places
    }
    assert where(panels["regions"], "value", "country") == {
        ("Île-de-France", "FR"),
        ("Occitanie", "FR"),
        ("Texas", "US"),
    }

    france = page.locator("[data-panel=countries] tr.nd-clickable", has_text="FR")
    settled(page, lambda: france.click())
    assert url_filters(page) == {"country": ["FR"]}
    panels = {panel["id"]: panel for panel in assert_panels_match_the_api(page, api, site)}
    assert where(panels["regions"], "value") == {("Île-de-France",), ("Occitanie",)}
    assert where(panels["cities"], "value") == {("Paris",), ("Versailles",), ("Toulouse",)}

    paris = page.locator("[data-panel=cities] tr.nd-clickable", has_text="Paris")
    settled(page, lambda: paris.click())
    assert url_filters(page) == {
        "country": ["FR"],
        "region": ["Île-de-France"],
        "city": ["Paris"],
    }
    assert card_values(page)["visitors"] == 1
    assert_panels_match_the_api(page, api, site, country="FR", region="Île-de-France", city="Paris")
