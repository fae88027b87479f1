"""Browser ids nobody else can claim (issue 15, "Proof that stands"): /init renews a bid only
for a request that shows a token the server issued for that bid and site (or a link token
made for it), and otherwise issues a new random bid, never the one asked for; an old but
genuine token renews, yet is refused where a fresh one is needed (/collect, /consent)."""

from __future__ import annotations

import time
from typing import cast
from urllib.parse import urlencode

import pytest

from ingest import identity
from ingest.selectors import forget_site_configs
from sites.models import Site
from sites.selectors import site_secrets_valid
from sites.services import site_secret_rotate
from tests.factories import SiteFactory
from tests.integration.test_collect_direct import post
from tests.tracking_client import TrackingClient

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("direct_path")]
ORIGIN = "https://shop.example"
DAY = 86400


@pytest.fixture
def shop(site_with_banner):
    site_with_banner.allowed_domains = ["shop.example"]
    site_with_banner.save()
    forget_site_configs()
    return site_with_banner


def init(site, **query: str) -> dict:
    response = TrackingClient().get(
        "/init?" + urlencode({"site": site.public_id, **query}), HTTP_ORIGIN=ORIGIN
    )
    assert response.status_code == 200, response.content
    assert response["cache-control"] == "no-store"
    return response.json()


def secret(site) -> str:
    return site_secrets_valid(site=site)[0]


def token(site, bid: str, *, age: float = 0, site_id: str | None = None) -> str:
    return identity.issue_token(
        secret=secret(site), bid=bid, site_id=site_id or site.public_id, now=time.time() - age
    )


def link(site, bid: str, *, age: float = 0) -> str:
    return identity.issue_link_token(
        secret=secret(site), bid=bid, site_id=site.public_id, now=time.time() - age
    )


def test_init_without_a_bid_issues_a_new_one_with_a_fresh_token(shop):
    first, second = init(shop), init(shop)
    assert first["bid"] != second["bid"]
    assert identity.token_is_valid(
        secrets_in_force=[secret(shop)],
        bid=first["bid"],
        site_id=shop.public_id,
        token=first["token"],
    )
    assert first["window_seconds"] == identity.TOKEN_WINDOW_SECONDS


def test_a_valid_old_token_renews_the_same_bid(shop):
    first = init(shop)
    assert init(shop, bid=first["bid"], token=first["token"])["bid"] == first["bid"]
    # A visitor back after three weeks: the token has long stopped being fresh, yet renews.
    old = token(shop, first["bid"], age=21 * DAY)
    renewed = init(shop, bid=first["bid"], token=old)
    assert renewed["bid"] == first["bid"]
    assert renewed["token"] != old
    assert identity.token_is_valid(
        secrets_in_force=[secret(shop)],
        bid=first["bid"],
        site_id=shop.public_id,
        token=renewed["token"],
    )


@pytest.mark.parametrize(
    "proof",
    [
        pytest.param(lambda site, bid, other: {}, id="no token"),
        pytest.param(lambda site, bid, other: {"token": "0" * 64}, id="forged, old format"),
        pytest.param(
            lambda site, bid, other: {"token": f"{int(time.time() // 300)}.{'0' * 64}"},
            id="forged MAC",
        ),
        pytest.param(
            lambda site, bid, other: {"token": token(site, "someone-else")}, id="other bid"
        ),
        pytest.param(
            lambda site, bid, other: {"token": token(site, bid, site_id=other.public_id)},
            id="other site",
        ),
        pytest.param(
            lambda site, bid, other: {
                "token": identity.issue_token(secret=secret(other), bid=bid, site_id=site.public_id)
            },
            id="other site's secret",
        ),
        pytest.param(
            lambda site, bid, other: {
                "token": token(site, bid, age=identity.RENEWAL_MAX_SECONDS + 600)
            },
            id="older than the renewal horizon",
        ),
        pytest.param(
            lambda site, bid, other: {"token": token(site, bid, age=-600)}, id="from the future"
        ),
        pytest.param(lambda site, bid, other: {"token": "1.zü"}, id="not ASCII"),
        # The two kinds are not interchangeable: a token is no link token and the reverse.
        pytest.param(lambda site, bid, other: {"link": token(site, bid)}, id="token as link"),
        pytest.param(lambda site, bid, other: {"token": link(site, bid)}, id="link as token"),
        pytest.param(
            lambda site, bid, other: {"link": link(site, bid, age=identity.LINK_MAX_SECONDS + 600)},
            id="expired link token",
        ),
    ],
)
def test_a_bid_without_its_proof_gets_a_new_random_bid(shop, organization, proof):
    other = SiteFactory(organization=organization)
    victim = init(shop)["bid"]
    answer = init(shop, bid=victim, **proof(shop, victim, other))
    assert answer["bid"] != victim
    assert len(answer["bid"]) == 32


def test_a_fresh_link_token_carries_the_bid(shop):
    first = init(shop)
    assert init(shop, bid=first["bid"], link=first["link"])["bid"] == first["bid"]
    late = link(shop, first["bid"], age=identity.LINK_MAX_SECONDS - 300)
    assert init(shop, bid=first["bid"], link=late)["bid"] == first["bid"]


def test_a_token_of_a_rotated_secret_renews_during_the_grace_period(shop):
    first = init(shop)
    site_secret_rotate(site=shop, grace_seconds=300)
    forget_site_configs()
    renewed = init(shop, bid=first["bid"], token=first["token"])
    assert renewed["bid"] == first["bid"]
    assert renewed["token"] != first["token"]  # signed with the new secret


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda site, bid: "0" * 64, id="forged"),
        pytest.param(lambda site, bid: token(site, bid, age=3 * DAY), id="genuine but old"),
        pytest.param(lambda site, bid: link(site, bid), id="a link token"),
    ],
)
def test_collect_and_consent_refuse_a_token_that_is_not_fresh(shop, organization, bad):
    # /collect on a site with its own CMP: the consent claim stands, so the bid is judged.
    own_cmp = cast(Site, SiteFactory(organization=organization, allowed_domains=["shop.example"]))
    bid = init(own_cmp)["bid"]
    batch = {
        "site": own_cmp.public_id,
        "bid": bid,
        "token": bad(own_cmp, bid),
        "consent": {"analytics": True},
        "events": [{"type": "pageview", "url": "https://shop.example/"}],
    }
    refused = post("/collect", batch, origin=ORIGIN)
    assert refused.status_code == 403
    assert "token" in refused.json()["error"]
    bid = init(shop)["bid"]
    decision = {
        "site": shop.public_id,
        "version": 1,
        "granted": ["necessary", "analytics"],
        "denied": ["ads"],
        "bid": bid,
        "token": bad(shop, bid),
    }
    refused = post("/consent", decision, origin=ORIGIN)
    assert refused.status_code == 403, refused.content
    assert "token" in refused.json()["error"]
