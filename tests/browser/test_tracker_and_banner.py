"""The tracker and the consent banner in headless Chromium, on the demo page, against a real
server in this process (uvicorn in a thread, direct path into ClickHouse, the test database):
what lands in ClickHouse, SPA navigation, engagement, links, ad viewability timing, accept /
reject / withdraw and what is sent and stored in each case, __tcfapi and Consent Mode output,
and the banner driven by keyboard only."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import pytest

from consent.models import ConsentRecord
from events.ids import id_millis
from ingest import identity
from naboria import clickhouse
from scripts.test_services import ROOT
from sites.selectors import site_secrets_valid
from tests.factories import published_campaign
from tests.helpers import eventually

pytestmark = [
    pytest.mark.browser,
    pytest.mark.clickhouse,
    pytest.mark.usefixtures("clickhouse_schema", "direct_path"),
]
DESKTOP_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
TCF_VENDORS = [2, 31, 77, 755]
DOCS_SCREENSHOT = ROOT / "docs" / "consent-banner.png"


@pytest.fixture
def shop(site_with_banner: Any) -> Any:
    site_with_banner.allowed_domains = ["127.0.0.1"]
    site_with_banner.save()
    return site_with_banner


@pytest.fixture
def page(browser: Any, server: str, shop: Any) -> Iterator[Any]:
    context = browser.new_context(user_agent=DESKTOP_CHROME, locale="en-US")
    page = context.new_page()
    page.sent = []  # bodies posted to the tracking endpoints, in order
    page.on(
        "request",
        lambda request: (
            page.sent.append((request.url.split("?")[0], request.post_data))
            if request.method == "POST"
            else None
        ),
    )
    page.goto(f"{server}/demo/?site={shop.public_id}")
    yield page
    context.close()


def rows(query: str, **parameters: Any) -> list[tuple[Any, ...]]:
    return clickhouse.get_client().query(query, parameters=parameters).result_rows


def page_rows(site: Any, columns: str, where: str = "1") -> list[tuple[Any, ...]]:
    return rows(
        f"SELECT {columns} FROM page_events WHERE site_id = {{s:String}} AND {where} "  # noqa: S608
        "ORDER BY timestamp",
        s=site.public_id,
    )


def stored_state(page: Any) -> dict[str, Any]:
    return page.evaluate(
        "() => ({local: {...localStorage}, session: {...sessionStorage}, cookies: document.cookie})"
    )


def banner(page: Any) -> Any:
    return page.get_by_role("dialog")


def test_pageview_lands_with_its_fields_and_nothing_is_stored_before_a_decision(page, shop):
    expect_banner_visible(page)
    pageviews = eventually(
        lambda: page_rows(
            shop,
            "pathname, hostname, browser, os, device_type, is_bot, consent_state, visitor_id",
            "event_type = 'pageview'",
        )
    )
    ((pathname, hostname, browser_name, os, device, is_bot, consent, visitor),) = pageviews
    assert (pathname, hostname, browser_name, os, device) == (
        "/demo/",
        "127.0.0.1",
        "Chrome",
        "Windows",
        "desktop",
    )
    assert (is_bot, consent) == (0, "none")
    assert len(visitor) == 32  # the day's salted hash
    # Prior consent: no identifier, no queue, no cookie before the visitor decides.
    assert stored_state(page) == {"local": {}, "session": {}, "cookies": ""}
    collected = [json.loads(body) for url, body in page.sent if url.endswith("/collect")]
    assert all(
        "bid" not in body and body["consent"] == {"analytics": False, "ads": False}
        for body in collected
    )
    # The event's id is a UUIDv7 made with it (events.ids): its time is the event's, and it is
    # the id stored.
    (sent,) = [
        event for body in collected for event in body["events"] if event["type"] == "pageview"
    ]
    assert uuid.UUID(sent["id"]).version == 7
    assert id_millis(sent["id"]) == sent["ts"]
    assert page_rows(shop, "toString(event_id)", "event_type = 'pageview'") == [(sent["id"],)]


def expect_banner_visible(page: Any) -> None:
    from playwright.sync_api import expect

    dialog = banner(page)
    expect(dialog).to_be_visible()
    expect(dialog).to_have_attribute("aria-modal", "true")
    accept = dialog.get_by_role("button", name="Accept all")
    reject = dialog.get_by_role("button", name="Reject all")
    # Equally prominent: the same style, the same size.
    assert accept.get_attribute("class") == reject.get_attribute("class")
    assert accept.bounding_box()["height"] == reject.bounding_box()["height"]


def test_accepting_identifies_the_visitor_and_updates_consent_mode(page, shop):
    banner(page).get_by_role("button", name="Accept all").click()
    record = eventually(lambda: ConsentRecord.objects.filter(site=shop).first())
    assert record.visitor_id_kind == "browser"
    assert record.granted == ["ads", "analytics", "necessary"]
    eventually(lambda: "id" in "".join(stored_state(page)["local"]))
    page.click("#nav-shoes")  # a single-page navigation after the decision
    consented = eventually(
        lambda: page_rows(shop, "visitor_id, consent_state", "pathname = '/demo/shoes'")
    )
    assert consented == [(record.visitor_id, "analytics+ads")]
    consent_calls = page.evaluate(
        "() => dataLayer.filter(a => a[0] === 'consent').map(a => [a[1], a[2]])"
    )
    assert consent_calls[0][0] == "default"
    assert set(consent_calls[0][1].items()) >= {
        ("ad_storage", "denied"),
        ("analytics_storage", "denied"),
        ("ad_user_data", "denied"),
        ("ad_personalization", "denied"),
    }
    assert consent_calls[-1] == [
        "update",
        {
            "ad_storage": "granted",
            "analytics_storage": "granted",
            "ad_user_data": "granted",
            "ad_personalization": "granted",
        },
    ]


def test_rejecting_keeps_the_visitor_anonymous(page, shop):
    banner(page).get_by_role("button", name="Reject all").click()
    record = eventually(lambda: ConsentRecord.objects.filter(site=shop).first())
    assert (record.visitor_id_kind, record.granted) == ("hashed", ["necessary"])
    page.click("#nav-bags")
    (visitor, consent) = eventually(
        lambda: page_rows(shop, "visitor_id, consent_state", "pathname = '/demo/bags'")
    )[0]
    # The day's salted hash: the same anonymous id as the record of the refusal.
    assert (visitor, consent) == (record.visitor_id, "none")
    state = stored_state(page)
    assert (state["local"], state["session"]) == ({}, {})  # the decision (a cookie), nothing else
    name, value = state["cookies"].split("=", 1)
    assert name == f"naboria_{shop.public_id}"
    decision = json.loads(unquote(value))
    assert sorted(decision["denied"]) == ["ads", "analytics"]


def test_withdrawing_from_the_floating_link_forgets_the_browser_id(page, shop):
    banner(page).get_by_role("button", name="Accept all").click()
    eventually(lambda: f"naboria:{shop.public_id}:id" in stored_state(page)["local"])
    bid = json.loads(stored_state(page)["local"][f"naboria:{shop.public_id}:id"])["bid"]
    page.locator(".nb-link").click()  # the floating link
    dialog = banner(page)
    assert dialog.get_by_label("Audience measurement").is_checked()
    assert dialog.get_by_label("Strictly necessary").is_disabled()
    dialog.get_by_label("Audience measurement").uncheck()
    dialog.get_by_label("Personalised advertising").uncheck()
    dialog.get_by_role("button", name="Save my choices").click()
    withdrawal = eventually(
        lambda: ConsentRecord.objects.filter(site=shop, granted=["necessary"]).first()
    )
    assert withdrawal.visitor_id == bid  # recorded against the id it withdraws
    eventually(lambda: f"naboria:{shop.public_id}:id" not in stored_state(page)["local"])
    page.click("#nav-bags")
    (visitor, consent) = eventually(
        lambda: page_rows(shop, "visitor_id, consent_state", "pathname = '/demo/bags'")
    )[0]
    assert (consent, visitor != bid) == ("none", True)


def test_the_browser_id_outlives_its_token_window(page, server, shop):
    """A visitor back a day later: the stored token is long past its window, /init renews the
    same id with it (and would have issued a new one for the id alone)."""
    banner(page).get_by_role("button", name="Accept all").click()
    key = f"naboria:{shop.public_id}:id"
    eventually(lambda: key in stored_state(page)["local"])
    bid = json.loads(stored_state(page)["local"][key])["bid"]
    day_old = identity.issue_token(
        secret=site_secrets_valid(site=shop)[0],
        bid=bid,
        site_id=shop.public_id,
        now=time.time() - 86400,
    )
    page.evaluate(
        "([key, id]) => localStorage.setItem(key, JSON.stringify(id))",
        [key, {"bid": bid, "token": day_old, "at": 0}],
    )
    with page.expect_response(lambda response: "/init?" in response.url) as renewal:
        page.goto(f"{server}/demo/?site={shop.public_id}")
    assert f"token={day_old}" in renewal.value.url  # the old token proves the id
    assert renewal.value.json()["bid"] == bid
    page.click("#nav-bags")
    (visitor, consent) = eventually(
        lambda: page_rows(shop, "visitor_id, consent_state", "pathname = '/demo/bags'")
    )[0]
    assert (visitor, consent) == (bid, "analytics+ads")
    renewed = json.loads(stored_state(page)["local"][key])
    assert renewed["bid"] == bid
    assert renewed["token"] != day_old


def test_a_new_id_from_the_server_gets_the_decision_recorded_again(page, server, shop):
    """A token that can no longer renew its id (its secret rotated out, say): /init issues a
    new id, and the banner records the stored decision again for it, so the server believes
    the consent the events claim."""
    banner(page).get_by_role("button", name="Accept all").click()
    key = f"naboria:{shop.public_id}:id"
    eventually(lambda: key in stored_state(page)["local"])
    bid = json.loads(stored_state(page)["local"][key])["bid"]
    unrenewable = identity.issue_token(secret="rotated out", bid=bid, site_id=shop.public_id)
    page.evaluate(
        "([key, id]) => localStorage.setItem(key, JSON.stringify(id))",
        [key, {"bid": bid, "token": unrenewable, "at": 0}],
    )
    with page.expect_response(lambda response: "/init?" in response.url) as renewal:
        page.goto(f"{server}/demo/?site={shop.public_id}")
    moved = renewal.value.json()["bid"]
    assert moved != bid
    eventually(lambda: json.loads(stored_state(page)["local"][key])["bid"] == moved)
    page.goto(f"{server}/demo/?site={shop.public_id}")  # the next page
    record = eventually(lambda: ConsentRecord.objects.filter(site=shop, visitor_id=moved).first())
    assert record is not None
    assert sorted(record.granted) == ["ads", "analytics", "necessary"]
    page.click("#nav-bags")
    (visitor, consent) = eventually(
        lambda: page_rows(shop, "visitor_id, consent_state", "pathname = '/demo/bags'")
    )[0]
    assert (visitor, consent) == (moved, "analytics+ads")


def test_custom_events_links_and_engagement(page, shop):
    banner(page).get_by_role("button", name="Reject all").click()
    page.click("#signup")
    # The tracker reports the click; the test stays on the page.
    page.evaluate("() => addEventListener('click', e => e.preventDefault())")
    page.click("#outbound")
    page.click("#download")
    page.mouse.wheel(0, 4000)
    page.wait_for_timeout(300)
    page.click("#nav-shoes")  # leaving the first page reports its engagement
    found = eventually(lambda: len(page_rows(shop, "event_type", "event_type != 'pageview'")) >= 4)
    assert found
    events = {
        row[0]: row[1:]
        for row in page_rows(
            shop, "event_type, event_name, properties, target, visible_ms, scroll_depth"
        )
    }
    assert events["event"][:2] == ("Signup", {"plan": "pro", "seats": "3"})
    assert events["outbound"][2] == "https://example.org/partner"
    assert events["download"][2].endswith("/static/naboria/manifest.json")
    visible_ms, scroll_depth = events["engagement"][3:]
    assert visible_ms > 0
    assert scroll_depth == 100


def test_ad_viewability_needs_one_continuous_second_in_view(page, shop):
    published_campaign(shop, ads=1)
    page.reload()  # the demo page renders its own ad element now that the site has an ad
    banner(page).get_by_role("button", name="Reject all").click()
    impression = page.get_attribute("#demo-ad", "data-naboria-impression")

    def ad_events() -> list[str]:
        return [
            kind
            for (kind,) in rows(
                "SELECT event_type FROM ad_events WHERE impression_id = {i:String} "
                "ORDER BY timestamp",
                i=impression,
            )
        ]

    assert eventually(lambda: ad_events() == ["impression"])  # rendered, below the fold
    page.eval_on_selector("#demo-ad", "e => e.scrollIntoView({block: 'center'})")
    page.wait_for_timeout(600)
    page.evaluate("() => window.scrollTo(0, 0)")  # away before the second is up
    page.wait_for_timeout(1200)
    assert ad_events() == ["impression"]
    page.eval_on_selector("#demo-ad", "e => e.scrollIntoView({block: 'center'})")
    assert eventually(lambda: "viewable" in ad_events(), timeout=5)
    page.click("#demo-ad", modifiers=["Control"])  # opens a tab; this page stays
    assert eventually(lambda: ad_events() == ["impression", "viewable", "click"])


def test_banner_works_with_the_keyboard_only(page, shop):
    dialog = banner(page)
    focused = page.evaluate("() => document.activeElement.textContent")
    assert focused == "Accept all"  # focus moved into the dialog
    labels = []
    for _ in range(4):  # Tab cycles within the dialog: it never reaches the page behind
        page.keyboard.press("Tab")
        labels.append(page.evaluate("() => document.activeElement.textContent"))
    assert labels == ["Reject all", "Choose", "Accept all", "Reject all"]
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Choose"
    page.keyboard.press("Escape")  # closing is not a decision
    assert dialog.is_visible()
    page.keyboard.press("Enter")  # "Choose": the purposes one by one, focus on the first
    assert page.evaluate("() => document.activeElement.value") == "analytics"
    page.keyboard.press("Space")  # grant analytics only
    for _ in range(6):
        if page.evaluate("() => document.activeElement.textContent") == "Save my choices":
            break
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    record = eventually(lambda: ConsentRecord.objects.filter(site=shop).first())
    assert (record.granted, record.denied) == (["analytics", "necessary"], ["ads"])
    assert not banner(page).count()


def test_tcf_api_returns_a_tc_string_of_the_choices(browser, server, shop):
    consent_banner = shop.consent_banner
    consent_banner.tcf_enabled = True
    consent_banner.tcf_cmp_id = 300
    consent_banner.tcf_cmp_version = 3
    consent_banner.tcf_publisher_country = "FR"
    consent_banner.tcf_vendor_ids = TCF_VENDORS
    consent_banner.save()
    context = browser.new_context(user_agent=DESKTOP_CHROME, locale="fr-FR")
    page = context.new_page()
    page.goto(f"{server}/demo/?site={shop.public_id}")
    # A tag on the page listens as soon as the loader's stub exists (maybe before the banner).
    page.wait_for_function("() => window.__tcfapi")
    page.evaluate(
        "() => { window.__early = []; __tcfapi('addEventListener', 2, (data, ok) =>"
        " __early.push([data.eventStatus, data.tcString, ok])) }"
    )
    ping = page.evaluate("() => new Promise(r => __tcfapi('ping', 2, r))")
    assert (ping["cmpId"], ping["cmpVersion"], ping["apiVersion"]) == (300, 3, "2.2")
    assert (ping["cmpStatus"], ping["displayStatus"], ping["tcfPolicyVersion"]) == (
        "loaded",
        "visible",
        4,
    )
    banner(page).get_by_role("button", name="Choose").click()
    # With TCF the site's analytics purpose is granted by consenting to its TCF purposes.
    for purpose in (1, 8, 9, 10):
        banner(page).locator(f"#nb-p{purpose}").check()
    banner(page).get_by_role("button", name="Save my choices").click()
    page.wait_for_function("() => __early.some(e => e[0] === 'useractioncomplete')")
    status, tc_string, ok = page.evaluate("() => __early[__early.length - 1]")
    assert (status, ok) == ("useractioncomplete", True)
    decoded = json.loads(
        subprocess.run(
            ["node", "tracker/scripts/decode-tc-string.mjs", tc_string],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    assert decoded["cmpId"] == 300
    assert decoded["publisherCountryCode"] == "FR"
    assert decoded["isServiceSpecific"] is True
    assert decoded["purposeConsents"] == [1, 8, 9, 10]
    assert decoded["vendorsDisclosed"] == TCF_VENDORS
    # No vendor was ticked (tests/browser/test_tcf.py covers every kind of choice).
    assert decoded["vendorConsents"] == []
    record = eventually(lambda: ConsentRecord.objects.filter(site=shop).first())
    assert record.tc_string == tc_string
    assert record.granted == ["analytics", "necessary"]
    context.close()


def test_an_app_bundling_the_tracker_starts_it_with_init(browser, server, shop):
    context = browser.new_context(user_agent=DESKTOP_CHROME)
    page = context.new_page()
    page.goto(f"{server}/health")  # any page of an allowed origin, without the loader
    core = page.evaluate(f"() => fetch('/t/{shop.public_id}.json').then(r => r.json())")["scripts"][
        0
    ]
    page.add_script_tag(url=core)
    page.evaluate(f"() => naboria.init({{site: '{shop.public_id}', host: '{server}'}})")
    page.get_by_role("dialog").wait_for()  # init loaded the banner too
    assert eventually(lambda: page_rows(shop, "pathname", "event_type = 'pageview'")) == [
        ("/health",)
    ]
    context.close()


def test_privacy_signal_stops_page_tracking_when_the_site_honours_it(browser, server, shop):
    shop.respect_do_not_track = True
    shop.save()
    context = browser.new_context(user_agent=DESKTOP_CHROME)
    page = context.new_page()
    page.add_init_script("Object.defineProperty(navigator, 'globalPrivacyControl', {value: true})")
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url))
    page.goto(f"{server}/demo/?site={shop.public_id}")
    page.wait_for_function("() => window.naboria && window.naboria.consent")
    page.click("#signup")
    page.wait_for_timeout(1500)  # longer than the tracker's batching delay
    assert not [url for url in sent if url.endswith("/collect")]
    context.close()


def test_screenshot_of_the_banner(browser, server, shop, tmp_path):
    """Also refreshes docs/consent-banner.png when NABORIA_UPDATE_SCREENSHOTS=1."""
    context = browser.new_context(
        user_agent=DESKTOP_CHROME, viewport={"width": 1100, "height": 640}
    )
    page = context.new_page()
    page.goto(f"{server}/demo/?site={shop.public_id}")
    banner(page).get_by_role("button", name="Choose").click()
    shot = tmp_path / "banner.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("NABORIA_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, DOCS_SCREENSHOT)
    context.close()
