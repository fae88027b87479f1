"""The tag manager in headless Chromium, on the demo pages against a real server: each tag
template (GA4, Google Ads, Meta Pixel, LinkedIn Insight, custom script, iframe, pixel) and each
kind of blocking markup runs only once all its purposes are granted — not after another
purpose's grant — and is stopped on withdrawal (removed, vendors told, cookies deleted, the
page reloaded when asked).

The vendors' servers are stood in for by Playwright routes (no test reaches the internet):
their scripts record that they ran, set the first-party cookies the real ones set and, for
Meta, process the fbq queue as fbevents.js does."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings

from tags.services import tag_create

pytestmark = [
    pytest.mark.browser,
    pytest.mark.clickhouse,
    pytest.mark.usefixtures("clickhouse_schema", "direct_path"),
]
AXE = settings.BASE_DIR / "tracker" / "node_modules" / "axe-core" / "axe.min.js"
GA4, ADS, META, LINKEDIN = "G-TEST1234", "AW-123456789", "1234567890123456", "514011"
PIXEL_GIF = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)
THIRD_PARTIES = re.compile(
    r"https://(www\.googletagmanager\.com|connect\.facebook\.net|snap\.licdn\.com|"
    r"widgets\.example|maps\.example|pixel\.example)/.*"
)
VENDOR_SCRIPTS = {
    "www.googletagmanager.com": """
        var id = new URL(document.currentScript.src).searchParams.get('id');
        (window.ran = window.ran || []).push('gtag:' + id);
        document.cookie = (id.indexOf('AW-') === 0 ? '_gcl_au' : '_ga') + '=1.1.42; path=/';
    """,
    "connect.facebook.net": """
        (window.ran = window.ran || []).push('meta');
        window.fbCalls = [];
        fbq.callMethod = function () { fbCalls.push([].slice.call(arguments)) };
        fbq.queue.forEach(function (call) { fbq.callMethod.apply(null, call) });
        document.cookie = '_fbp=fb.1.42; path=/';
    """,
    "snap.licdn.com": """
        (window.ran = window.ran || []).push('linkedin:' + window._linkedin_data_partner_ids);
        document.cookie = 'li_fat_id=42; path=/';
    """,
    "widgets.example": """
        (window.ran = window.ran || []).push('chat-src');
        window.Chat = { start: function () { window.ran.push('chat-code') } };
        document.cookie = '_chat_id=42; path=/';
    """,
}


@pytest.fixture
def shop(site_with_banner: Any) -> Any:
    site_with_banner.allowed_domains = ["127.0.0.1"]
    site_with_banner.save()
    return site_with_banner


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    context = browser.new_context(locale="en-US")
    context.requested = []  # third-party URLs the page asked for, in order

    def vendor(route: Any) -> None:
        url = route.request.url
        context.requested.append(url)
        host = url.split("/")[2]
        if host == "maps.example":
            route.fulfill(content_type="text/html", body="<p id=map>Store map</p>")
        elif host == "pixel.example":
            route.fulfill(content_type="image/gif", body=PIXEL_GIF)
        else:
            route.fulfill(content_type="text/javascript", body=VENDOR_SCRIPTS[host])

    context.route(THIRD_PARTIES, vendor)
    yield context
    context.close()


def hosts(context: Any) -> set[str]:
    return {url.split("/")[2] for url in context.requested}


def cookies(page: Any) -> set[str]:
    """The tags' cookies: every cookie but the banner's own decision (``naboria_<site>``)."""
    names = {pair.split("=")[0] for pair in page.evaluate("document.cookie").split("; ") if pair}
    return {name for name in names if not name.startswith("naboria_")}


def choose(page: Any, *granted: str, acted_on: bool = True) -> None:
    """Grants exactly these purposes (by name) in the banner's second layer and, with
    ``acted_on``, waits until the page has acted on the decision (a page that reloads on it
    never gets there)."""
    dialog = page.get_by_role("dialog")
    if not dialog.is_visible():
        page.locator(".nb-link").click()
    elif dialog.get_by_role("button", name="Choose").is_visible():
        dialog.get_by_role("button", name="Choose").click()
    for name in ("Audience measurement", "Personalised advertising"):
        dialog.get_by_label(name).set_checked(name in granted)
    # Announced, and handled: the tags module acts in a task of its own after the event, which
    # was queued before this one.
    page.evaluate(
        "() => { window.announced = false; addEventListener('naboria:consent',"
        " () => setTimeout(() => { window.announced = true }), {once: true}) }"
    )
    dialog.get_by_role("button", name="Save my choices").click()
    if acted_on:
        page.wait_for_function("window.announced")


def make_tags(shop: Any) -> None:
    for name, template, purposes, fields in [
        ("GA4", "ga4", ["analytics"], {"tracking_id": GA4}),
        ("Google Ads", "google_ads", ["ads"], {"tracking_id": ADS}),
        ("Meta", "meta_pixel", ["ads"], {"tracking_id": META}),
        ("LinkedIn", "linkedin", ["ads"], {"tracking_id": LINKEDIN}),
        (
            "Chat",
            "script",
            ["analytics", "ads"],
            {
                "url": "https://widgets.example/chat.js",
                "code": "Chat.start()",
                "cookies": ["_chat*"],
            },
        ),
        (
            "Map",
            "iframe",
            ["ads"],
            {"url": "https://maps.example/embed", "title": "Store map", "container": "demo-widget"},
        ),
        ("Pixel", "pixel", ["ads"], {"url": "https://pixel.example/p.gif"}),
    ]:
        tag_create(site=shop, name=name, template=template, purposes=purposes, **fields)


def page_state(page: Any) -> dict[str, Any]:
    return page.evaluate(
        """() => ({
            ran: window.ran || [],
            scripts: [...document.scripts].map(s => s.src.split('/')[2])
                .filter(h => h && !h.startsWith('127.')),
            frames: [...document.querySelectorAll('#demo-widget iframe')]
                .map(f => [f.src, f.title]),
            pixels: [...document.images].map(i => i.src).filter(s => s.includes('pixel.example')),
            gaDisabled: [window['ga-disable-G-TEST1234'], window['ga-disable-AW-123456789']],
            consentUpdates: dataLayer.filter(a => a[0] === 'consent' && a[1] === 'update')
                .map(a => a[2]),
            configs: dataLayer.filter(a => a[0] === 'config').map(a => a[1]),
        })"""
    )


def test_each_template_runs_after_its_own_purposes_and_stops_on_withdrawal(context, server, shop):
    make_tags(shop)
    page = context.new_page()
    page.goto(f"{server}/demo/?site={shop.public_id}")
    page.get_by_role("dialog").wait_for()
    page.wait_for_load_state("networkidle")
    # Before a decision: nothing of anybody else's is requested or put in the page.
    assert context.requested == []
    assert page_state(page)["scripts"] == []
    assert cookies(page) == set()

    # Analytics only: GA4 (analytics) runs; nothing bound to ads, nor the chat (analytics + ads).
    choose(page, "Audience measurement")
    page.wait_for_function("(window.ran || []).includes('gtag:G-TEST1234')")
    page.wait_for_load_state("networkidle")
    assert hosts(context) == {"www.googletagmanager.com"}
    state = page_state(page)
    assert state["configs"] == [GA4]
    # Configured after the banner's Consent Mode update that granted analytics_storage.
    layer = page.evaluate("dataLayer.map(a => [a[0], a[1], a[2] && a[2].analytics_storage])")
    granted_at = layer.index(["consent", "update", "granted"])
    assert granted_at < layer.index(["config", GA4, None])
    assert (state["frames"], state["pixels"]) == ([], [])

    # Ads too: every tag runs; the chat's code after its script.
    choose(page, "Audience measurement", "Personalised advertising")
    page.wait_for_function("(window.ran || []).includes('chat-code')")
    page.wait_for_function("(window.ran || []).length === 6")
    state = page_state(page)
    assert sorted(state["ran"]) == sorted(
        [f"gtag:{GA4}", f"gtag:{ADS}", "meta", f"linkedin:{LINKEDIN}", "chat-src", "chat-code"]
    )
    assert state["ran"].index("chat-src") < state["ran"].index("chat-code")
    assert state["frames"] == [["https://maps.example/embed", "Store map"]]
    assert state["pixels"] == ["https://pixel.example/p.gif"]
    assert page.evaluate("fbCalls") == [["consent", "grant"], ["init", META], ["track", "PageView"]]
    assert cookies(page) == {"_ga", "_gcl_au", "_fbp", "li_fat_id", "_chat_id"}
    page.evaluate("window.notReloaded = true")
    updates = len(state["consentUpdates"])

    # Ads withdrawn: what needs ads is removed and told, its cookies deleted; GA4 stays.
    choose(page, "Audience measurement")
    state = page_state(page)
    assert state["scripts"] == ["www.googletagmanager.com"]
    assert (state["frames"], state["pixels"]) == ([], [])
    assert state["gaDisabled"] == [False, True]
    # Google Ads denies the Consent Mode signals of its purposes (besides the banner's own
    # update of all four).
    assert {
        "ad_storage": "denied",
        "ad_user_data": "denied",
        "ad_personalization": "denied",
    } in state["consentUpdates"][updates:]
    assert page.evaluate("fbCalls")[-1] == ["consent", "revoke"]
    assert cookies(page) == {"_ga"}
    assert page.evaluate("window.notReloaded")  # no tag asked for a reload

    # Analytics withdrawn as well: GA4 is switched off and its cookies go.
    choose(page)
    state = page_state(page)
    assert (state["scripts"], state["gaDisabled"]) == ([], [True, True])
    assert cookies(page) == set()

    # Granted again on a new page: the stored decision starts the tags at once.
    choose(page, "Personalised advertising")
    context.requested.clear()
    page.reload()
    page.wait_for_function("(window.ran || []).includes('meta')")
    page.wait_for_load_state("networkidle")
    assert hosts(context) == {
        "www.googletagmanager.com",
        "connect.facebook.net",
        "snap.licdn.com",
        "maps.example",
        "pixel.example",
    }
    assert page_state(page)["configs"] == [ADS]
    # A page without the iframe's container does not get the iframe; the other tags run.
    page.goto(f"{server}/demo/tags/?site={shop.public_id}")
    page.wait_for_function("(window.ran || []).includes('meta')")
    page.wait_for_load_state("networkidle")
    assert page.evaluate("document.querySelectorAll('iframe[src*=\"maps.example\"]').length") == 0
    assert page_state(page)["pixels"] == ["https://pixel.example/p.gif"]


def test_advanced_consent_mode_runs_google_tags_before_consent_and_holds_the_others(
    context, server, shop
):
    shop.consent_banner.consent_mode_type = "advanced"
    shop.consent_banner.save()
    make_tags(shop)
    page = context.new_page()
    page.goto(f"{server}/demo/?site={shop.public_id}")
    page.get_by_role("dialog").wait_for()
    page.wait_for_function("(window.ran || []).length === 2")
    page.wait_for_load_state("networkidle")
    # Before a decision: the two Google tags run, configured after the denied defaults;
    # nobody else's script, frame or pixel is requested.
    state = page_state(page)
    assert sorted(state["ran"]) == sorted([f"gtag:{GA4}", f"gtag:{ADS}"])
    assert hosts(context) == {"www.googletagmanager.com"}
    assert (state["frames"], state["pixels"]) == ([], [])
    layer = page.evaluate("dataLayer.map(a => [a[0], a[1], a[2] && a[2].ad_storage])")
    assert layer.index(["consent", "default", "denied"]) < layer.index(["config", GA4, None])
    assert state["gaDisabled"] == [False, False]

    # Everything granted, then ads withdrawn: the Google tags stay (Consent Mode denies their
    # signals again), Google Ads' cookie goes; the others are stopped as in basic mode.
    choose(page, "Audience measurement", "Personalised advertising")
    page.wait_for_function("(window.ran || []).includes('meta')")
    choose(page, "Audience measurement")
    state = page_state(page)
    assert state["scripts"] == ["www.googletagmanager.com", "www.googletagmanager.com"]
    assert state["gaDisabled"] == [False, False]
    assert state["consentUpdates"][-1]["ad_storage"] == "denied"
    assert "_gcl_au" not in cookies(page)
    assert "_fbp" not in cookies(page)
    # Each Google tag was configured once: a grant does not start it again.
    assert sorted(state["configs"]) == sorted([GA4, ADS])


def test_a_tag_can_make_the_page_reload_on_withdrawal(context, server, shop):
    tag_create(
        site=shop,
        name="Widget",
        template="script",
        purposes=["ads"],
        code="window.widgetRan = true",
        reload_on_withdrawal=True,
    )
    page = context.new_page()
    page.goto(f"{server}/demo/?site={shop.public_id}")
    page.get_by_role("dialog").get_by_role("button", name="Accept all").click()
    page.wait_for_function("window.widgetRan === true")
    with page.expect_navigation():
        choose(page, "Audience measurement", acted_on=False)
    page.wait_for_load_state("networkidle")
    assert page.evaluate("window.widgetRan") is None  # a new page, where it did not run


def markup_state(page: Any) -> dict[str, Any]:
    return page.evaluate(
        """() => ({
            runs: window.demoRuns || [],
            statuses: ['ads', 'widget', 'analytics']
                .map(k => document.getElementById('status-' + k).textContent),
            frame: (document.querySelector('iframe[data-naboria-purpose]') || {}).src || null,
            placeholder: !!document.querySelector('.naboria-blocked'),
            live: [...document.scripts].filter(
                s => s.type !== 'text/plain' && /demo\\/widget|demoRuns/.test(s.src + s.text)
            ).length,
        })"""
    )


def test_blocking_markup_runs_after_its_purposes_and_iframes_load_on_click(context, server, shop):
    page = context.new_page()
    page.on("request", lambda request: context.requested.append(request.url))
    # A page without blocking markup on a site without tags does not load the tags module.
    page.goto(f"{server}/demo/?site={shop.public_id}")
    page.wait_for_load_state("networkidle")
    assert not [url for url in context.requested if "/tags." in url]
    page.goto(f"{server}/demo/tags/?site={shop.public_id}")
    page.get_by_role("dialog").wait_for()
    page.wait_for_load_state("networkidle")
    assert [url for url in context.requested if "/tags." in url]
    assert not [url for url in context.requested if "/demo/embed/" in url or "widget.js" in url]
    assert markup_state(page) == {
        "runs": [],
        "statuses": ["held back", "held back", "held back"],
        "frame": None,
        "placeholder": True,
        "live": 0,
    }
    load = page.get_by_role("button", name="Load Store map (Personalised advertising)")
    assert AXE.exists(), "axe-core is missing: `make tracker` (npm ci) installs it"
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate(
        "() => axe.run('.naboria-blocked').then(r => r.violations.map(v => v.id))"
    )
    assert violations == []  # the placeholder, as axe-core judges it
    assert (
        "until you allow: Personalised advertising" in page.locator(".naboria-blocked").inner_text()
    )

    # Analytics only: the analytics script runs; not the one for ads, nor the one needing both.
    choose(page, "Audience measurement")
    page.wait_for_function("(window.demoRuns || []).includes('analytics')")
    page.wait_for_load_state("networkidle")
    state = markup_state(page)
    assert (state["runs"], state["statuses"]) == (["analytics"], ["held back", "held back", "ran"])
    assert state["frame"] is None

    # The iframe's button (keyboard) loads it for this page view, without any grant.
    load.focus()
    page.keyboard.press("Enter")
    frame = page.frame_locator("iframe[data-naboria-purpose]")
    assert frame.locator("#embed").inner_text().startswith("Store map")
    assert page.evaluate("document.activeElement.tagName") == "IFRAME"
    assert markup_state(page)["placeholder"] is False

    # Ads too: the two scripts run in page order (the file after the inline one).
    choose(page, "Audience measurement", "Personalised advertising")
    page.wait_for_function("(window.demoRuns || []).includes('widget')")
    state = markup_state(page)
    assert state["runs"] == ["analytics", "ads", "widget"]
    assert state["statuses"] == ["ran", "loaded and ran", "ran"]

    # Ads withdrawn: the scripts needing it are removed, the iframe goes back to its placeholder.
    choose(page, "Audience measurement")
    state = markup_state(page)
    assert (state["frame"], state["placeholder"], state["live"]) == (None, True, 1)

    # Granted again: the iframe loads by itself, and the scripts run again.
    choose(page, "Audience measurement", "Personalised advertising")
    page.wait_for_function("(window.demoRuns || []).length === 5")
    assert markup_state(page)["frame"].endswith("/demo/embed/")
