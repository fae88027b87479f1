"""Expiry, scope and the choices that apply at once, in headless Chromium on the demo page
against a real server (issue 15, items 5 and 6 on the banner side): a decision is asked again
after its months or a material change (not after a minor edit), one decision serves every
subdomain of the registrable domain, a withdrawal stops tracking before the server answers, GPC
denies ad personalisation in Consent Mode, TCF and Naboria's ads, and the visitor's country
(the server's) picks the region's rule and Consent Mode defaults."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote

import pytest
from django.core.cache import cache

from consent.models import ConsentPurpose, ConsentRecord
from consent.services import consent_banner_refresh_version
from ingest.selectors import forget_site_configs
from scripts.test_services import ROOT
from tests.browser.test_tracker_and_banner import (
    DESKTOP_CHROME,
    TCF_VENDORS,
    banner,
    page_rows,
    stored_state,
)
from tests.conftest import CHROMIUM
from tests.helpers import eventually

pytestmark = [
    pytest.mark.browser,
    pytest.mark.clickhouse,
    pytest.mark.usefixtures("clickhouse_schema", "direct_path"),
]
TEST_COUNTRY_HEADER = "x-naboria-test-country"
DAY_MS = 86_400_000


@pytest.fixture
def shop(site_with_banner: Any) -> Any:
    site_with_banner.allowed_domains = ["127.0.0.1"]
    site_with_banner.save()
    return site_with_banner


def visit(browser: Any, url: str, **options: Any) -> Any:
    """A new visit (a context of its own: nothing cached, e.g. the 5-minute loader)."""
    context = browser.new_context(user_agent=DESKTOP_CHROME, locale="en-US", **options)
    page = context.new_page()
    page.sent = []
    page.on(
        "request",
        lambda request: (
            page.sent.append((time.monotonic(), request.url, request.post_data))
            if request.method == "POST"
            else None
        ),
    )
    page.goto(url)
    page.wait_for_function("() => window.naboria && window.naboria.consent")
    return page


def decision_cookie(page: Any, site: Any) -> dict[str, Any]:
    (cookie,) = [c for c in page.context.cookies() if c["name"] == f"naboria_{site.public_id}"]
    return {**cookie, "decision": json.loads(unquote(cookie["value"]))}


def with_decision(page: Any, site: Any, **changes: Any) -> list[dict[str, Any]]:
    """The page's decision cookie with ``changes`` made to the decision it holds."""
    cookie = decision_cookie(page, site)
    value = quote(json.dumps({**cookie["decision"], **changes}), safe="")
    keep = ("name", "domain", "path", "expires", "sameSite")
    return [{**{key: cookie[key] for key in keep}, "value": value}]


def consent_of(page: Any) -> dict[str, bool]:
    return page.evaluate("() => naboria.consent.get()")


def consent_mode_calls(page: Any) -> list[list[Any]]:
    return page.evaluate("() => dataLayer.filter(a => a[0] === 'consent').map(a => [a[1], a[2]])")


def forget_configs() -> None:
    """The server caches a site's loader config for a minute and its tracking settings for
    longer: a test that changes the banner starts afresh."""
    cache.clear()
    forget_site_configs()


def months_ago(months: float) -> int:
    return int(time.time() * 1000 - months * 30.5 * DAY_MS)


# --- 5. expiry and scope -------------------------------------------------------------------


def test_a_decision_is_asked_again_after_its_months_not_before(browser, server, shop):
    url = f"{server}/demo/?site={shop.public_id}"
    page = visit(browser, url)
    banner(page).get_by_role("button", name="Accept all").click()
    eventually(lambda: decision_cookie(page, shop)["decision"]["recorded"])
    cookie = decision_cookie(page, shop)
    # A year, give or take a day: the cookie lives at least as long as the decision counts.
    assert cookie["expires"] - time.time() > 365 * 86_400
    assert (cookie["domain"], cookie["sameSite"]) == ("127.0.0.1", "Lax")

    eleven = visit(browser, url)
    eleven.context.add_cookies(with_decision(page, shop, at=months_ago(11)))
    eleven.reload()
    eleven.wait_for_function("() => window.naboria && document.querySelector('.nb-link')")
    assert banner(eleven).count() == 0
    assert consent_of(eleven) == {"analytics": True, "ads": True}

    for months in (13, 25):  # 25: the decision of the issue, still honoured before
        stale = visit(browser, url)
        stale.context.add_cookies(with_decision(page, shop, at=months_ago(months)))
        stale.reload()
        banner(stale).wait_for()
        assert consent_of(stale) == {"analytics": False, "ads": False}
        assert consent_mode_calls(stale)[-1][0] == "default"  # no update from the stale one

    # Six months on this banner: a seven-month-old decision is asked again.
    shop.consent_banner.consent_expiry_months = 6
    shop.consent_banner.save()
    forget_configs()
    seven = visit(browser, url)
    seven.context.add_cookies(with_decision(page, shop, at=months_ago(7)))
    seven.reload()
    banner(seven).wait_for()


def test_a_material_change_asks_again_and_a_minor_edit_does_not(browser, server, shop):
    url = f"{server}/demo/?site={shop.public_id}"
    page = visit(browser, url)
    banner(page).get_by_role("button", name="Accept all").click()
    eventually(lambda: decision_cookie(page, shop)["decision"]["recorded"])
    cookies = page.context.cookies()
    bid = json.loads(stored_state(page)["local"][f"naboria:{shop.public_id}:id"])["bid"]

    text = shop.consent_banner.texts.get()
    text.body = text.body.replace("relevant", "relevent") + " Typo fixed."
    text.save()
    assert consent_banner_refresh_version(banner=shop.consent_banner, material=False) == "minor"
    forget_configs()
    minor = visit(browser, url)
    minor.context.add_cookies(cookies)
    minor.reload()
    minor.wait_for_function("() => document.querySelector('.nb-link')")
    assert banner(minor).count() == 0
    assert consent_of(minor) == {"analytics": True, "ads": True}
    # The server still honours it too: the visitor's pageviews are counted as consented.
    minor.click("#nav-shoes")
    assert eventually(
        lambda: page_rows(shop, "visitor_id, consent_state", "pathname = '/demo/shoes'")
    ) == [(bid, "analytics+ads")]

    # A new purpose is material whatever the editor says.
    ConsentPurpose.objects.create(
        banner=shop.consent_banner, key="chat", name="Chat with us", order=9
    )
    assert consent_banner_refresh_version(banner=shop.consent_banner, material=False) == (
        "material"
    )
    forget_configs()
    material = visit(browser, url)
    material.context.add_cookies(cookies)
    material.reload()
    banner(material).wait_for()
    assert consent_of(material) == {"analytics": False, "ads": False}


@pytest.fixture
def resolving_browser() -> Iterator[Any]:
    """Chromium resolving every *.example.com host to this machine."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--host-resolver-rules=MAP *.example.com 127.0.0.1"],
        )
        yield instance
        instance.close()


def test_one_decision_serves_every_subdomain_of_the_registrable_domain(
    resolving_browser, server, shop, settings
):
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, ".example.com"]
    shop.allowed_domains = ["shop.example.com", "blog.example.com", "127.0.0.1"]
    shop.save()
    forget_configs()
    port = server.rsplit(":", 1)[1]
    context = resolving_browser.new_context(user_agent=DESKTOP_CHROME)
    on_shop = context.new_page()
    on_shop.goto(f"http://shop.example.com:{port}/demo/?site={shop.public_id}")
    banner(on_shop).get_by_role("button", name="Choose").click()
    banner(on_shop).get_by_label("Audience measurement").check()
    banner(on_shop).get_by_role("button", name="Save my choices").click()
    record = eventually(lambda: ConsentRecord.objects.filter(site=shop).first())
    assert record.granted == ["analytics", "necessary"]
    eventually(lambda: decision_cookie(on_shop, shop)["decision"]["recorded"])
    assert decision_cookie(on_shop, shop)["domain"] == ".example.com"

    on_blog = context.new_page()
    on_blog.goto(f"http://blog.example.com:{port}/demo/?site={shop.public_id}")
    on_blog.wait_for_function("() => document.querySelector('.nb-link')")
    assert banner(on_blog).count() == 0  # not asked again
    assert on_blog.evaluate("() => naboria.consent.get()") == {"analytics": True, "ads": False}
    # The same visitor on both hosts, counted with the consent recorded on the first.
    on_blog.click("#nav-bags")
    assert eventually(
        lambda: page_rows(shop, "hostname, visitor_id, consent_state", "pathname = '/demo/bags'")
    ) == [("blog.example.com", record.visitor_id, "analytics")]

    # A withdrawal on one host is the decision of the other.
    on_blog.locator(".nb-link").click()
    banner(on_blog).get_by_label("Audience measurement").uncheck()
    banner(on_blog).get_by_role("button", name="Save my choices").click()
    eventually(lambda: ConsentRecord.objects.filter(site=shop, granted=["necessary"]).exists())
    eventually(lambda: decision_cookie(on_blog, shop)["decision"]["recorded"])
    on_shop.reload()
    on_shop.wait_for_function("() => document.querySelector('.nb-link')")
    assert on_shop.evaluate("() => naboria.consent.get()") == {"analytics": False, "ads": False}
    # ... and the browser id it took back is gone from that host too.
    assert f"naboria:{shop.public_id}:id" not in stored_state(on_shop)["local"]
    context.close()


# --- 6. choices apply at once and everywhere -----------------------------------------------


def test_a_withdrawal_stops_tracking_before_the_server_answers(browser, server, shop):
    page = visit(browser, f"{server}/demo/?site={shop.public_id}")
    banner(page).get_by_role("button", name="Accept all").click()
    eventually(lambda: f"naboria:{shop.public_id}:id" in stored_state(page)["local"])
    bid = json.loads(stored_state(page)["local"][f"naboria:{shop.public_id}:id"])["bid"]
    held: list[Any] = []
    page.route(
        "**/consent", lambda route: held.append(route)
    )  # the server's answer is delayed until we say
    page.locator(".nb-link").click()
    banner(page).get_by_label("Audience measurement").uncheck()
    banner(page).get_by_label("Personalised advertising").uncheck()
    # An event queued (for the 1 s batch) under the consent, then the withdrawal at once.
    page.evaluate(
        "() => { naboria.track('Queued', {}); [...document.querySelectorAll('[role=dialog] "
        "button')].find(b => b.textContent === 'Save my choices').click() }"
    )
    withdrawn_at = time.monotonic()
    eventually(lambda: held)
    # Before any answer: Google tags are told, the tracker holds no id and claims nothing.
    assert consent_mode_calls(page)[-1] == [
        "update",
        {
            "ad_storage": "denied",
            "analytics_storage": "denied",
            "ad_user_data": "denied",
            "ad_personalization": "denied",
        },
    ]
    assert consent_of(page) == {"analytics": False, "ads": False}
    assert f"naboria:{shop.public_id}:id" not in stored_state(page)["local"]
    page.click("#signup")
    page.click("#nav-bags")
    page.wait_for_timeout(1500)  # longer than the tracker's batching delay
    assert not ConsentRecord.objects.filter(site=shop, granted=["necessary"]).exists()
    after = [
        json.loads(body)
        for at, url, body in page.sent
        if at >= withdrawn_at and url.endswith("/collect")
    ]
    assert after, "the anonymous pageview and event go on, as before any decision"
    assert all("bid" not in body and not any(body["consent"].values()) for body in after)
    sent_events = [
        event
        for at, url, body in page.sent
        if url.endswith("/collect")
        for event in json.loads(body)["events"]
    ]
    # The event queued under the consent taken back is dropped, not sent without it.
    assert "Queued" not in [event.get("name") for event in sent_events]
    assert "Signup" in [event.get("name") for event in sent_events]
    held[0].continue_()
    record = eventually(
        lambda: ConsentRecord.objects.filter(site=shop, granted=["necessary"]).first()
    )
    assert record.visitor_id == bid
    assert eventually(
        lambda: page_rows(shop, "visitor_id, consent_state", "pathname = '/demo/bags'")
    )[0] == (page_rows(shop, "visitor_id", "pathname = '/demo/bags'")[0][0], "none")
    assert page_rows(shop, "visitor_id", "pathname = '/demo/bags'")[0][0] != bid


def decoded_tc(tc_string: str) -> dict[str, Any]:
    return json.loads(
        subprocess.run(
            ["node", "tracker/scripts/decode-tc-string.mjs", tc_string],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )


def test_gpc_denies_ad_personalisation_in_consent_mode_tcf_and_naboria_ads(browser, server, shop):
    shop.respect_do_not_track = True
    shop.save()
    consent_banner = shop.consent_banner
    consent_banner.tcf_enabled = True
    consent_banner.tcf_cmp_id = 300
    consent_banner.tcf_vendor_ids = TCF_VENDORS
    consent_banner.save()
    forget_configs()
    url = f"{server}/demo/?site={shop.public_id}"
    # Before GPC: everything accepted (TCF purposes 1-4, 7-10).
    before = visit(browser, url)
    banner(before).get_by_role("button", name="Accept all").click()
    eventually(lambda: decision_cookie(before, shop)["decision"]["recorded"])
    assert decoded_tc(decision_cookie(before, shop)["decision"]["tc"])["purposeConsents"] == [
        1,
        2,
        3,
        4,
        7,
        8,
        9,
        10,
    ]

    ConsentRecord.objects.all().delete()
    gpc = "Object.defineProperty(navigator, 'globalPrivacyControl', {value: true})"
    page = visit(browser, url)
    page.add_init_script(gpc)
    page.reload()
    page.wait_for_function("() => window.naboria && navigator.globalPrivacyControl")
    banner(page).get_by_role("button", name="Choose").click()
    # With TCF the ads purpose stands for TCF purposes 2-4 and 7: their switches are locked.
    assert banner(page).locator("#nb-p2").is_disabled()
    assert not banner(page).locator("#nb-p1").is_disabled()
    banner(page).get_by_role("button", name="Accept all").click()
    record = eventually(lambda: ConsentRecord.objects.filter(site=shop).first())
    assert record.granted == ["analytics", "necessary"]  # "Accept all" cannot grant ads
    assert eventually(lambda: consent_of(page) == {"analytics": True, "ads": False})
    assert consent_mode_calls(page)[-1] == [
        "update",
        {
            "ad_storage": "denied",
            "analytics_storage": "granted",
            "ad_user_data": "denied",
            "ad_personalization": "denied",
        },
    ]
    tc = decoded_tc(record.tc_string)
    assert tc["purposeConsents"] == [1, 8, 9, 10]
    assert tc["specialFeatureOptins"] == []

    # A decision stored before GPC is narrowed when GPC arrives, and the server is told.
    ConsentRecord.objects.all().delete()
    later = visit(browser, url)
    later.context.add_cookies(before.context.cookies())
    later.add_init_script(gpc)
    later.reload()
    narrowed = eventually(lambda: ConsentRecord.objects.filter(site=shop).first())
    assert narrowed.granted == ["analytics", "necessary"]
    assert eventually(lambda: consent_of(later) == {"analytics": True, "ads": False})
    assert consent_mode_calls(later)[1][1]["ad_personalization"] == "denied"  # the loader's
    assert 2 not in decoded_tc(narrowed.tc_string)["purposeConsents"]


@pytest.fixture
def country_header(settings: Any) -> str:
    """The test-only geo header (settings.GEO_TEST_COUNTRY_HEADER): loopback has no country."""
    settings.GEO_TEST_COUNTRY_HEADER = TEST_COUNTRY_HEADER
    return TEST_COUNTRY_HEADER


def from_country(browser: Any, url: str, country: str) -> Any:
    return visit(browser, url, extra_http_headers={TEST_COUNTRY_HEADER: country})


def test_location_rules_come_from_the_server_and_set_consent_mode_region_defaults(
    browser, server, shop, country_header
):
    url = f"{server}/demo/?site={shop.public_id}"
    # By default every region is asked first: no request for the country at all.
    page = from_country(browser, url, "US")
    banner(page).wait_for()
    assert not page.evaluate(
        "() => performance.getEntriesByType('resource').some(e => e.name.includes('/region'))"
    )
    assert [call[0] for call in consent_mode_calls(page)] == ["default"]

    shop.consent_banner.outside_regulated_regions = "opt_out"
    shop.consent_banner.save()
    forget_configs()
    for country in ("DE", "GB", "CH", "NO"):  # EEA, UK, Switzerland: asked first
        page = from_country(browser, url, country)
        banner(page).wait_for()
        assert consent_of(page) == {"analytics": False, "ads": False}
        page.context.close()
    page = from_country(browser, url, "US")  # opt-out: a notice, granted until refused
    banner(page).wait_for()
    assert eventually(lambda: consent_of(page) == {"analytics": True, "ads": True})
    regional, general = consent_mode_calls(page)[:2]
    assert regional[0] == general[0] == "default"
    assert {"DE", "FR", "GB", "CH", "NO", "IS", "LI"} <= set(regional[1]["region"])
    assert "US" not in regional[1]["region"]
    assert regional[1]["ad_storage"] == "denied"
    assert "region" not in general[1]
    assert general[1]["ad_storage"] == general[1]["analytics_storage"] == "granted"
    assert not ConsentRecord.objects.exists()  # nothing decided, nothing recorded
    assert stored_state(page)["cookies"] == ""
    # Granted by the region's rule, on the server too: one visitor from page to page.
    id_key = f"naboria:{shop.public_id}:id"
    assert eventually(lambda: id_key in stored_state(page)["local"])
    bid = json.loads(stored_state(page)["local"][id_key])["bid"]
    page.reload()
    banner(page).wait_for()
    page.click("#nav-shoes")
    assert eventually(
        lambda: page_rows(shop, "visitor_id, consent_state", "pathname = '/demo/shoes'")
    ) == [(bid, "analytics+ads")]
    banner(page).get_by_role("button", name="Reject all").click()
    assert eventually(lambda: consent_of(page) == {"analytics": False, "ads": False})
    assert consent_mode_calls(page)[-1][1]["analytics_storage"] == "denied"

    shop.consent_banner.outside_regulated_regions = "no_banner"
    shop.consent_banner.save()
    forget_configs()
    page = from_country(browser, url, "BR")
    page.wait_for_function("() => document.querySelector('.nb-link')")
    assert banner(page).count() == 0
    assert eventually(lambda: consent_of(page) == {"analytics": True, "ads": True})
    assert from_country(browser, url, "FR").get_by_role("dialog").is_visible()


def test_consent_mode_basic_and_advanced(browser, server, shop):
    url = f"{server}/demo/?site={shop.public_id}"
    page = visit(browser, url)
    basic = consent_mode_calls(page)[0][1]  # the default
    assert "wait_for_update" not in basic
    assert basic["ad_storage"] == "denied"
    assert page.evaluate("() => naboriaConfig.banner.consentMode") == "basic"
    shop.consent_banner.consent_mode_type = "advanced"
    shop.consent_banner.save()
    forget_configs()
    advanced = consent_mode_calls(visit(browser, url))[0][1]
    assert advanced["wait_for_update"] == 500
    assert advanced["ad_storage"] == "denied"


def test_a_decision_stored_by_an_earlier_release_counts_and_moves_to_the_cookie(
    browser, server, shop
):
    page = visit(browser, f"{server}/demo/?site={shop.public_id}")
    legacy = {
        "version": 1,
        "granted": ["necessary"],
        "denied": ["analytics", "ads"],
        "at": months_ago(2),
        "recorded": True,
    }
    page.evaluate(
        "([key, value]) => localStorage.setItem(key, value)",
        [f"naboria:{shop.public_id}:consent", json.dumps(legacy)],
    )
    page.reload()
    page.wait_for_function("() => document.querySelector('.nb-link')")
    assert banner(page).count() == 0
    assert decision_cookie(page, shop)["decision"] == legacy
    assert stored_state(page)["local"] == {}
