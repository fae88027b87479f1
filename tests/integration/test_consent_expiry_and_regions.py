"""Expiry, scope and location rules on the server side (issue 15, items 5 and 6): the server
stops honouring a decision once it expired or a material change asks again, a minor edit made
in the admin keeps decisions, the loader config carries the registrable domains and the rules,
and GET /region answers the visitor's rule from the server's own idea of the country."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils.timezone import now

from consent.models import ConsentRecord
from consent.regions import OPT_IN_REQUIRED, region_rule
from consent.scope import registrable_domain, registrable_domains
from consent.selectors import banner_config, forget_all_recorded_purposes
from ingest.selectors import forget_site_configs
from tests.integration.test_collect_direct import VISITOR_IP, TrackingClient, post, rows

pytestmark = [
    pytest.mark.clickhouse,
    pytest.mark.django_db,
    pytest.mark.usefixtures("clickhouse_schema", "direct_path"),
]
ORIGIN = "https://shop.example.com"
CLAIM = {"analytics": True, "ads": True}


@pytest.fixture
def shop(site_with_banner: Any) -> Any:
    site_with_banner.allowed_domains = ["shop.example.com", "*.blog.example.co.uk"]
    site_with_banner.save()
    forget_site_configs()
    return site_with_banner


def consent_state_of_a_pageview(site: Any, bid: str, token: str) -> str:
    body = {
        "site": site.public_id,
        "consent": CLAIM,
        "bid": bid,
        "token": token,
        "events": [{"type": "pageview", "url": f"{ORIGIN}/"}],
    }
    assert post("/collect", body, origin=ORIGIN).status_code == 202
    ((state,),) = rows(
        "SELECT consent_state FROM page_events WHERE site_id = {s:String} "
        "ORDER BY received_at DESC LIMIT 1",
        s=site.public_id,
    )
    return state


def granted_visitor(site: Any) -> tuple[str, str]:
    body = {
        "site": site.public_id,
        "version": 1,
        "granted": ["necessary", "analytics", "ads"],
        "denied": [],
    }
    answer = post("/consent", body, origin=ORIGIN).json()
    return answer["bid"], answer["token"]


def test_the_server_stops_honouring_a_decision_once_it_expired(shop):
    bid, token = granted_visitor(shop)
    assert consent_state_of_a_pageview(shop, bid, token) == "analytics+ads"
    ConsentRecord.objects.update(recorded_at=now() - timedelta(days=366))
    forget_all_recorded_purposes()
    assert consent_state_of_a_pageview(shop, bid, token) == "none"
    # Twenty-four months on this banner: the same record counts again.
    shop.consent_banner.consent_expiry_months = 24
    shop.consent_banner.save()
    forget_all_recorded_purposes()
    assert consent_state_of_a_pageview(shop, bid, token) == "analytics+ads"


def test_the_server_stops_honouring_decisions_given_before_a_material_change(shop):
    bid, token = granted_visitor(shop)
    banner = shop.consent_banner
    banner.version, banner.reprompt_version = 3, 2  # version 2 was material, 3 was minor
    banner.save()
    forget_all_recorded_purposes()
    assert consent_state_of_a_pageview(shop, bid, token) == "none"
    ConsentRecord.objects.update(banner_version=2)
    forget_all_recorded_purposes()
    assert consent_state_of_a_pageview(shop, bid, token) == "analytics+ads"


def admin_change(client: Any, banner: Any, **changes: Any) -> Any:
    """POSTs the banner's admin change form as shown, with ``changes`` (form field names)."""
    url = f"/admin/consent/consentbanner/{banner.pk}/change/"
    context = client.get(url).context
    form = context["adminform"].form
    data: dict[str, Any] = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if value is not None and value is not False:
            data[name] = field.prepare_value(value) if hasattr(field, "prepare_value") else value
    for formset in context["inline_admin_formsets"]:
        management = formset.formset.management_form
        data.update({management.add_prefix(k): v for k, v in management.initial.items()})
        for inline_form in formset.formset.forms:
            for name, field in inline_form.fields.items():
                value = inline_form.initial.get(name, field.initial)
                if value is None or value is False:
                    continue
                if hasattr(value, "pk"):
                    value = value.pk
                data[inline_form.add_prefix(name)] = field.prepare_value(value)
    data.update(changes)
    return client.post(url, data)


def test_a_minor_edit_in_the_admin_keeps_decisions_and_a_material_one_asks_again(
    shop, admin_client
):
    banner = shop.consent_banner
    response = admin_change(admin_client, banner, **{"texts-0-title": "Your privcy"})
    assert response.status_code == 302, response.content[:2000]
    banner.refresh_from_db()
    assert (banner.version, banner.reprompt_version) == (2, 2)  # material by default

    response = admin_change(
        admin_client, banner, minor_edit="on", **{"texts-0-title": "Your privacy"}
    )
    assert response.status_code == 302
    banner.refresh_from_db()
    assert (banner.version, banner.reprompt_version) == (3, 2)  # a typo fix: kept

    # A purpose's Consent Mode signals are scope: material even when called minor.
    response = admin_change(
        admin_client,
        banner,
        minor_edit="on",
        **{"purposes-1-consent_mode_signals": '["analytics_storage", "ad_storage"]'},
    )
    assert response.status_code == 302
    banner.refresh_from_db()
    assert (banner.version, banner.reprompt_version) == (4, 4)


def test_the_loader_config_carries_expiry_scope_and_rules(shop):
    config = banner_config(banner=shop.consent_banner)
    assert (config["expiryMonths"], config["reprompt"]) == (12, 1)
    assert config["domains"] == ["example.com", "example.co.uk"]
    # Basic Consent Mode by default: no Google tag runs before consent.
    assert (config["elsewhere"], config["consentMode"]) == ("opt_in", "basic")
    assert "optInRegions" not in config  # the same rule everywhere: no region defaults
    shop.consent_banner.outside_regulated_regions = "opt_out"
    shop.consent_banner.google_consent_mode = False
    config = banner_config(banner=shop.consent_banner)
    assert config["optInRegions"] == OPT_IN_REQUIRED
    assert config["consentMode"] is False


@pytest.mark.parametrize(
    ("host", "domain"),
    [
        ("shop.example.com", "example.com"),
        ("*.a.b.example.co.uk", "example.co.uk"),
        ("example.com:8000", "example.com"),
        ("foo.github.io", "foo.github.io"),  # a private suffix: browsers refuse github.io
        ("github.io", ""),
        ("127.0.0.1", ""),
        ("localhost", ""),
    ],
)
def test_registrable_domain_follows_the_public_suffix_list(host, domain):
    assert registrable_domain(host) == domain


def test_registrable_domains_are_distinct_and_skip_hosts_without_one():
    assert registrable_domains(["a.example.com", "b.example.com", "127.0.0.1"]) == ["example.com"]


def test_rules_by_region():
    assert len(OPT_IN_REQUIRED) == 27 + 3 + 2
    for country in ("DE", "FR", "GR", "IS", "LI", "NO", "GB", "CH", "", "de"):
        assert region_rule(elsewhere="no_banner", country=country) == "opt_in"
    assert region_rule(elsewhere="opt_out", country="US") == "opt_out"
    assert region_rule(elsewhere="opt_in", country="US") == "opt_in"


def region(site: Any, **headers: str) -> Any:
    return TrackingClient().get(
        f"/region?site={site.public_id}",
        REMOTE_ADDR=VISITOR_IP,  # a British address
        **{f"HTTP_{key.upper()}": value for key, value in headers.items()},
    )


def test_region_answers_the_rule_for_the_country_of_the_address(shop, settings):
    shop.consent_banner.outside_regulated_regions = "opt_out"
    shop.consent_banner.save()
    forget_site_configs()
    answer = region(shop, origin=ORIGIN)
    assert answer.status_code == 200
    assert answer.json() == {"country": "GB", "rule": "opt_in"}
    assert answer["Cache-Control"] == "private, max-age=600"
    # The test-only header counts only where a test turned it on.
    assert region(shop, origin=ORIGIN, x_test_country="US").json()["country"] == "GB"
    settings.GEO_TEST_COUNTRY_HEADER = "x-test-country"
    assert region(shop, origin=ORIGIN, x_test_country="US").json() == {
        "country": "US",
        "rule": "opt_out",
    }


def test_region_refuses_unknown_sites_and_foreign_origins(shop):
    assert TrackingClient().get("/region?site=nope").status_code == 404
    assert TrackingClient().get("/region").status_code == 400
    assert region(shop, origin="https://evil.example").status_code == 403
    assert TrackingClient().post(f"/region?site={shop.public_id}").status_code == 405


def test_opt_out_regions_count_the_claim_until_the_visitor_refuses(shop, settings):
    settings.GEO_TEST_COUNTRY_HEADER = "x-test-country"
    shop.consent_banner.outside_regulated_regions = "opt_out"
    shop.consent_banner.save()
    forget_site_configs()
    init = post("/init?site=" + shop.public_id, b"", origin=ORIGIN).json()

    def state_from(country: str) -> str:
        body = {
            "site": shop.public_id,
            "consent": CLAIM,
            "bid": init["bid"],
            "token": init["token"],
            "events": [{"type": "pageview", "url": f"{ORIGIN}/{country}"}],
        }
        assert post("/collect", body, origin=ORIGIN, x_test_country=country).status_code == 202
        ((state,),) = rows(
            "SELECT consent_state FROM page_events WHERE site_id = {s:String} "
            "AND pathname = {p:String}",
            s=shop.public_id,
            p=f"/{country}",
        )
        return state

    # No decision: granted where the rule is opt-out, not in the EEA / UK / CH.
    assert state_from("US") == "analytics+ads"
    assert state_from("DE") == "none"
    assert state_from("GB") == "none"
    # The visitor refuses: the record wins everywhere.
    body = {
        "site": shop.public_id,
        "version": 1,
        "granted": ["necessary"],
        "denied": ["analytics", "ads"],
    }
    body["bid"] = init["bid"]
    assert post("/consent", body, origin=ORIGIN).status_code == 201
    assert state_from("CA") == "none"


def test_a_privacy_signal_denies_ads_consent_on_the_server_whatever_was_recorded(shop):
    from asgiref.sync import async_to_sync

    from events.schemas import Consent
    from ingest.selectors import consent_verified, load_site_config

    bid, _ = granted_visitor(shop)  # analytics and ads recorded
    claim = Consent(analytics=True, ads=True)

    def verified(**signal: Any) -> Consent:
        site = load_site_config(shop.public_id)
        assert site is not None
        return async_to_sync(consent_verified)(site=site, bid=bid, claimed=claim, **signal)

    assert verified() == claim
    assert verified(privacy_signal=True) == Consent(analytics=True, ads=False)
    shop.respect_do_not_track = False  # the site does not honour it
    shop.save()
    assert verified(privacy_signal=True) == claim
