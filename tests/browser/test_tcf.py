"""IAB TCF v2.2 in headless Chromium on the demo page: what both layers of the banner show
(vendor count, purposes with the IAB's texts, the legitimate-interest notice, each vendor's
declarations, retention, storage and privacy policy) and the TC string each kind of decision
produces, decoded with the IAB's @iabtcf/core (tracker/scripts/decode-tc-string.mjs): accept
all, reject all, per purpose, per vendor, objections, special features, publisher restrictions,
non-standard texts and the Created date kept across decisions."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from consent.models import ConsentRecord, RestrictionType, TcfPublisherRestriction
from scripts.test_services import ROOT
from tests.helpers import eventually

pytestmark = [
    pytest.mark.browser,
    pytest.mark.clickhouse,
    pytest.mark.usefixtures("clickhouse_schema", "direct_path"),
]
# Captify (consent 1,2,3,4,7,9,10, special feature 2), Ogury (consent 1, LI 2,7,9,10 flexible),
# Comscore (consent 1,7,8,9,10), DoubleVerify (LI 2,7,10 only), Google (consent 1,3,4, LI 2,7,9,10).
VENDORS = [2, 31, 77, 126, 755]
CONSENT_VENDORS = [2, 31, 77, 755]
# The site's own purposes stand for TCF 1,8,9,10 (analytics) and 1,2,3,4,7 (ads).
OFFERED_PURPOSES = [1, 2, 3, 4, 7, 8, 9, 10]
# A TC string created on 2024-05-17 (by src/cmp/tcf.js, nothing consented).
OLD_TC_STRING = "CP-wiwAP-wiwAEsADBENAHEgAAAAAAAAAAqIAAAAAAAA.IAAA"


@pytest.fixture
def tcf_site(site_with_banner: Any) -> Any:
    site_with_banner.allowed_domains = ["127.0.0.1"]
    site_with_banner.save()
    banner = site_with_banner.consent_banner
    banner.tcf_enabled = True
    banner.tcf_cmp_id = 300
    banner.tcf_cmp_version = 3
    banner.tcf_publisher_country = "FR"
    banner.tcf_vendor_ids = VENDORS
    banner.save()
    return site_with_banner


@pytest.fixture
def page(browser: Any, server: str, tcf_site: Any) -> Any:
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.open_demo = lambda: open_demo(page, server, tcf_site)
    yield page
    context.close()
    assert page.errors == []


def open_demo(page: Any, server: str, site: Any) -> None:
    page.goto(f"{server}/demo/?site={site.public_id}")
    page.wait_for_function("() => window.__tcfapi")
    page.evaluate(
        "() => { window.__tc = []; __tcfapi('addEventListener', 2, (data, ok) =>"
        " ok && data.eventStatus === 'useractioncomplete' && __tc.push(data)) }"
    )


def dialog(page: Any) -> Any:
    return page.get_by_role("dialog")


def decided(page: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The TCData sent to listeners after the decision, and its string decoded by @iabtcf."""
    page.wait_for_function("() => __tc.length")
    data = page.evaluate("() => __tc[__tc.length - 1]")
    return data, decode(data["tcString"])


def decode(tc_string: str) -> dict[str, Any]:
    decoded = subprocess.run(
        ["node", "tracker/scripts/decode-tc-string.mjs", tc_string],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(decoded)
    return result


def flags(ids: dict[str, bool]) -> list[int]:
    return sorted(int(key) for key, value in ids.items() if value)


def test_first_layer_discloses_vendors_purposes_and_legitimate_interest_and_accept_all(
    page, tcf_site
):
    page.open_demo()
    first = dialog(page)
    text = first.inner_text()
    assert "our 5 partners" in text
    assert "legitimate interest" in text
    assert "object" in text
    # The purposes by their IAB standard names, and the special feature asked for.
    assert "Store and/or access information on a device" in text
    assert "Measure content performance" in text
    assert "Actively scan device characteristics for identification" in text
    assert first.get_by_role("button", name="See our 5 partners").is_visible()
    first.get_by_role("button", name="Accept all").click()
    data, decoded = decided(page)
    assert decoded["purposeConsents"] == OFFERED_PURPOSES
    # Every vendor asking for consent gets it, for the purposes it declared.
    assert decoded["vendorConsents"] == CONSENT_VENDORS
    assert decoded["purposeLegitimateInterests"] == [2, 7, 9, 10]
    assert decoded["vendorLegitimateInterests"] == [31, 126, 755]
    assert decoded["specialFeatureOptins"] == [2]
    assert decoded["vendorsDisclosed"] == VENDORS
    assert decoded["publisherRestrictions"] == []
    assert decoded["useNonStandardTexts"] is False
    # What listeners get says the same as the string.
    assert flags(data["vendor"]["consents"]) == CONSENT_VENDORS
    assert flags(data["purpose"]["legitimateInterests"]) == [2, 7, 9, 10]
    record = eventually(lambda: ConsentRecord.objects.filter(site=tcf_site).first())
    assert (record.granted, record.tc_string) == (
        ["ads", "analytics", "necessary"],
        data["tcString"],
    )


def test_reject_all_signals_no_consent_and_no_legitimate_interest(page, tcf_site):
    page.open_demo()
    dialog(page).get_by_role("button", name="Reject all").click()
    _, decoded = decided(page)
    for field in (
        "purposeConsents",
        "purposeLegitimateInterests",
        "vendorConsents",
        "vendorLegitimateInterests",
        "specialFeatureOptins",
    ):
        assert decoded[field] == [], field
    assert decoded["vendorsDisclosed"] == VENDORS
    record = eventually(lambda: ConsentRecord.objects.filter(site=tcf_site).first())
    assert record.granted == ["necessary"]


def test_second_layer_shows_each_vendor_and_takes_choices_one_by_one(page, tcf_site):
    page.open_demo()
    dialog(page).get_by_role("button", name="See our 5 partners").click()
    second = dialog(page)
    assert page.errors == []
    assert second.locator("details.nb-vendors > summary").inner_text() == (
        "Partners (IAB TCF vendors) (5)"
    )
    # The IAB's standard description of purpose 1 and the legitimate interest switches.
    assert "Cookies, device or similar online identifiers" in second.inner_text()
    captify = second.locator("details.nb-vendor", has_text="Captify Technologies")
    captify.locator("summary").click()
    details = captify.inner_text()
    assert "Retention: 365 days" in details
    assert "Device storage: cookies up to 365 days" in details
    assert "Actively scan device characteristics" in details  # its special feature
    assert (
        captify.get_by_role("link", name="Privacy policy")
        .get_attribute("href")
        .startswith("https://")
    )
    ogury = second.locator("details.nb-vendor", has_text="Ogury")
    ogury.locator("summary").click()
    assert "Legitimate interest claim" in ogury.inner_text()
    assert "cookies up to 182 seconds" in ogury.inner_text()
    # Consent to purposes 1, 8, 9 and 10 (the site's analytics), to Comscore and Google, opt in
    # to special feature 2, object to LI for purpose 7 and to Ogury's LI.
    for name in ("Comscore", "Google Advertising"):
        second.locator("details.nb-vendor", has_text=name).locator("summary").click()
    for box in ("#nb-p1", "#nb-p8", "#nb-p9", "#nb-p10", "#nb-v77", "#nb-v755", "#nb-f2"):
        second.locator(box).check()
    second.locator("#nb-o7").check()
    second.locator("#nb-ov31").check()
    assert second.locator("#nb-v126").count() == 0  # LI only: nothing to consent to
    second.get_by_role("button", name="Save my choices").click()
    _, decoded = decided(page)
    assert decoded["purposeConsents"] == [1, 8, 9, 10]
    assert decoded["vendorConsents"] == [77, 755]
    assert decoded["purposeLegitimateInterests"] == [2, 9, 10]
    assert decoded["vendorLegitimateInterests"] == [126, 755]
    assert decoded["specialFeatureOptins"] == [2]
    record = eventually(lambda: ConsentRecord.objects.filter(site=tcf_site).first())
    assert (record.granted, record.denied) == (["analytics", "necessary"], ["ads"])

    # Reopened, the second layer shows these choices; changing one keeps the others.
    page.evaluate("() => naboria.consent.open()")
    reopened = dialog(page)
    assert reopened.locator("#nb-p8").is_checked()
    assert reopened.locator("#nb-o7").is_checked()
    assert not reopened.locator("#nb-p2").is_checked()
    reopened.locator("#nb-o7").uncheck()
    reopened.get_by_role("button", name="Save my choices").click()
    page.wait_for_function("() => __tc.length === 2")
    _, again = decided(page)
    assert again["purposeLegitimateInterests"] == [2, 7, 9, 10]
    assert again["vendorConsents"] == [77, 755]


def test_restrictions_texts_and_created_date_reach_the_string(page, tcf_site):
    banner = tcf_site.consent_banner
    TcfPublisherRestriction.objects.create(
        banner=banner, purpose=3, restriction_type=RestrictionType.NOT_ALLOWED
    )
    TcfPublisherRestriction.objects.create(
        banner=banner,
        purpose=7,
        restriction_type=RestrictionType.REQUIRE_CONSENT,
        vendor_ids=[31],
    )
    banner.tcf_non_standard_texts = {"1": {"name": "Cookies on your device", "description": "x"}}
    banner.save()
    page.open_demo()
    # A decision from an earlier banner version: its Created date is kept.
    page.evaluate(
        "([key, tc]) => localStorage.setItem(key, JSON.stringify({version: 0, tc, granted: []}))",
        [f"naboria:{tcf_site.public_id}:consent", OLD_TC_STRING],
    )
    page.open_demo()
    assert "Cookies on your device" in dialog(page).inner_text()
    dialog(page).get_by_role("button", name="Accept all").click()
    _, decoded = decided(page)
    assert decoded["created"] == "2024-05-17T00:00:00.000Z"
    assert decoded["lastUpdated"] != decoded["created"]
    assert decoded["useNonStandardTexts"] is True
    assert decoded["publisherRestrictions"] == [[3, 0, VENDORS], [7, 1, [31]]]
    # Ogury's purpose 7 is now consent-based: still LI for DoubleVerify and Google.
    assert decoded["purposeLegitimateInterests"] == [2, 7, 9, 10]
    assert decoded["vendorConsents"] == CONSENT_VENDORS
    # The second layer shows Ogury's declarations as restricted (purpose 7 under consent), with
    # the publisher's own name for purpose 1.
    page.evaluate("() => naboria.consent.open()")
    dialog(page).locator("details.nb-vendors > summary").click()
    ogury = dialog(page).locator("details.nb-vendor", has_text="Ogury")
    ogury.locator("summary").click()
    lines = ogury.inner_text().splitlines()
    assert "Purposes (consent): Cookies on your device; Measure advertising performance" in lines
    assert (
        "Legitimate interest: Use limited data to select advertising; Understand audiences "
        "through statistics or combinations of data from different sources; Develop and "
        "improve services"
    ) in lines


def test_both_layers_have_no_accessibility_violation(page):
    """axe-core (from tracker/node_modules) on the dialog, first layer then second layer with
    every vendor unfolded."""
    axe = ROOT / "tracker" / "node_modules" / "axe-core" / "axe.min.js"
    page.open_demo()
    page.add_script_tag(path=str(axe))

    def violations() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = page.evaluate(
            """() => axe.run(document.querySelector('[role=dialog]')).then(result =>
                 result.violations.map(v => ({id: v.id, nodes: v.nodes.slice(0, 3)
                   .map(n => n.target.join(' '))})))"""
        )
        return found

    assert violations() == []
    dialog(page).get_by_role("button", name="See our 5 partners").click()
    page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
    assert violations() == []
