"""Cross-domain visitors (issue 16 part 6, docs/cross-domain.md): a site on several domains
counts one visitor and one visit across them when the visitor consented, through the link
token (/init, /decision); without consent no identifier crosses (the browser side, link
decoration and stripping, is tests/browser/test_cross_domain.py)."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

import pytest

from analytics.reports import traffic
from analytics.reports.query import ReportQuery
from consent.scope import link_domains
from events.visits import VISIT_GAP
from ingest import identity
from ingest.selectors import forget_site_configs
from ingest.tracker_script import tracker_config
from sites.selectors import site_secrets_valid
from tests.factories import SiteFactory
from tests.integration.test_collect_direct import post, rows
from tests.tracking_client import TrackingClient

pytestmark = [
    pytest.mark.clickhouse,
    pytest.mark.django_db,
    pytest.mark.usefixtures("clickhouse_schema", "direct_path"),
]
SHOP = "https://www.shop.com"
PARIS = "https://shop-paris.fr"


@pytest.fixture
def shops(site_with_banner):
    site_with_banner.allowed_domains = ["shop.com", "*.shop.com", "shop-paris.fr"]
    site_with_banner.save()
    forget_site_configs()
    return site_with_banner


def get(path: str, origin: str, **query: str):
    return TrackingClient().get(f"{path}?{urlencode(query)}", HTTP_ORIGIN=origin)


def decide(site, granted, denied, origin=SHOP, **extra):
    body = {"site": site.public_id, "version": 1, "granted": granted, "denied": denied, **extra}
    answer = post("/consent", body, origin=origin)
    assert answer.status_code == 201, answer.content
    return answer.json()


def pageview(site, url, *, origin, bid, token):
    body = {
        "site": site.public_id,
        "bid": bid,
        "token": token,
        "consent": {"analytics": True},
        "events": [{"type": "pageview", "url": url, "id": str(uuid.uuid4())}],
    }
    assert post("/collect", body, origin=origin).status_code == 202


@pytest.mark.parametrize(
    ("hosts", "domains"),
    [
        (["shop.com", "*.shop.com", "shop-paris.fr:8443"], ["shop.com", "shop-paris.fr"]),
        (["www.shop.co.uk", "blog.shop.co.uk"], []),  # one registrable domain
        (["a.github.io", "b.github.io"], ["a.github.io", "b.github.io"]),  # private suffix
        (["127.0.0.1", "localhost", "LOCALHOST"], ["127.0.0.1", "localhost"]),
        (["shop.com"], []),
    ],
)
def test_link_domains_are_the_registrable_domains_when_several(hosts, domains):
    assert link_domains(hosts) == domains


def test_the_loader_links_the_sites_domains_only_when_they_are_several(shops, organization):
    origin = "https://naboria.example"
    config = tracker_config(site=shops, origin=origin, bundled=False)
    assert config["linkDomains"] == ["shop.com", "shop-paris.fr"]
    assert "/linker." in config["scripts"][0]  # before the tracker: it strips _nb first
    assert "/tracker." in config["scripts"][1]
    # An app bundling the tracker loads the bundles after it: no linker there.
    bundled = tracker_config(site=shops, origin=origin, bundled=True)
    assert bundled["linkDomains"] == []
    assert not any("/linker." in script for script in bundled["scripts"])
    # Subdomains of one domain share the decision cookie: nothing to link.
    shops.allowed_domains = ["shop.com", "*.shop.com", "blog.shop.com"]
    assert tracker_config(site=shops, origin=origin, bundled=False)["linkDomains"] == []
    # Without Naboria's banner the tracker cannot know the decision at load: no linker.
    own_cmp = SiteFactory(organization=organization, allowed_domains=["a.example", "b.example"])
    assert tracker_config(site=own_cmp, origin=origin, bundled=False)["linkDomains"] == []


def test_two_domains_of_a_site_are_one_visitor_and_one_visit(shops):
    granted = decide(shops, ["necessary", "analytics"], ["ads"])
    bid = granted["bid"]
    pageview(shops, f"{SHOP}/", origin=SHOP, bid=bid, token=granted["token"])
    # The visitor follows a decorated link (_nb=<bid>.<link>) to the other domain, whose
    # banner has no decision cookie there: it adopts the recorded one.
    carried = get("/decision", PARIS, site=shops.public_id, bid=bid, link=granted["link"])
    assert carried.status_code == 200
    answer = carried.json()
    assert answer["decision"]["granted"] == ["analytics", "necessary"]
    assert answer["decision"]["version"] == 1
    assert answer["bid"] == bid
    # The tracker there renews the carried id with the link token: the same id.
    renewed = get("/init", PARIS, site=shops.public_id, bid=bid, link=granted["link"]).json()
    assert renewed["bid"] == bid
    pageview(shops, f"{PARIS}/panier", origin=PARIS, bid=bid, token=renewed["token"])
    pageview(shops, f"{PARIS}/caisse", origin=PARIS, bid=bid, token=answer["token"])

    # Plain SQL on the stored events: one visitor id on both hosts, and (counted here, with
    # the visit rule's inactivity gap) one visit.
    stored = rows(
        "SELECT hostname, visitor_id, timestamp FROM page_events WHERE site_id = {s:String} "
        "ORDER BY visitor_id, timestamp",
        s=shops.public_id,
    )
    assert {(host, visitor) for host, visitor, _ in stored} == {
        ("www.shop.com", bid),
        ("shop-paris.fr", bid),
    }
    visits = sum(
        1
        for index, (_, visitor, moment) in enumerate(stored)
        if index == 0
        or stored[index - 1][1] != visitor
        or moment - stored[index - 1][2] > VISIT_GAP
    )
    assert (len({visitor for _, visitor, _ in stored}), visits, len(stored)) == (1, 1, 3)
    # The reports agree: one visitor with one visit of three pageviews.
    query = ReportQuery.parse(site_id=shops.public_id, timezone="UTC", params={})
    period = traffic.overview(query)["period"]
    assert (period["visitors"], period["visits"], period["pageviews"]) == (1, 1, 3)


def test_a_decision_is_handed_over_only_for_its_link_token(shops):
    granted = decide(shops, ["necessary", "analytics"], ["ads"])
    bid = granted["bid"]
    secret = site_secrets_valid(site=shops)[0]
    unproven = [
        {},
        {"link": "0" * 64},
        {"link": granted["token"]},  # a token is not a link token
        {"token": granted["token"]},
        {
            "link": identity.issue_link_token(
                secret=secret, bid=bid, site_id=shops.public_id, now=0
            )
        },  # long expired
    ]
    for proof in unproven:
        answer = get("/decision", PARIS, site=shops.public_id, bid=bid, **proof)
        assert answer.status_code == 200
        assert answer.json() == {"decision": None}, proof
    # An id with a link token but nothing recorded for it: nothing to adopt.
    stranger = identity.issue_browser_id()
    stranger_link = identity.issue_link_token(secret=secret, bid=stranger, site_id=shops.public_id)
    answer = get("/decision", PARIS, site=shops.public_id, bid=stranger, link=stranger_link)
    assert answer.json() == {"decision": None}


def test_without_consent_no_identifier_crosses(shops):
    granted = decide(shops, ["necessary", "analytics"], ["ads"])
    # The visitor withdraws on the first domain; an old decorated link is followed later.
    decide(
        shops,
        ["necessary"],
        ["analytics", "ads"],
        bid=granted["bid"],
        token=granted["token"],
    )
    carried = get(
        "/decision", PARIS, site=shops.public_id, bid=granted["bid"], link=granted["link"]
    ).json()
    # The withdrawal is the decision there too, and no id nor token comes with it.
    assert carried["decision"]["granted"] == ["necessary"]
    assert set(carried) == {"decision"}


def test_decision_refuses_bad_input(shops):
    assert get("/decision", PARIS, site="nosuchsite", bid="b").status_code == 404
    bad = get("/decision", PARIS, site=shops.public_id, bid="x" * 65)
    assert bad.status_code == 400
    assert "bid must be" in bad.json()["error"]
    assert get("/decision", "https://rival.example", site=shops.public_id).status_code == 403
