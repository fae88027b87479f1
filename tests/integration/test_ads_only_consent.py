"""An "ads only" grant honoured by the server (issue 15, item 6): a visitor who granted ads but
not analytics gets a browser id and token from /consent, with which the ad server personalises
(here: device targeting, which needs ads consent), while page events stay anonymous; the id
counts only with its token, and only as far as the recorded decision granted."""

from __future__ import annotations

from typing import Any

import pytest

from ads import snapshot
from consent.models import ConsentRecord
from ingest.selectors import forget_site_configs
from tests.factories import published_campaign
from tests.integration.test_collect_direct import post, rows

pytestmark = [
    pytest.mark.mongodb,
    pytest.mark.clickhouse,
    pytest.mark.django_db,
    pytest.mark.usefixtures("clickhouse_schema", "direct_path", "empty_delivery"),
]
ORIGIN = "https://shop.example"
DESKTOP = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Safari/537.36"
)


@pytest.fixture
def shop(site_with_banner: Any) -> Any:
    site_with_banner.allowed_domains = ["shop.example"]
    site_with_banner.save()
    forget_site_configs()
    return site_with_banner


def decide(site: Any, granted: list[str], denied: list[str], **extra: str) -> Any:
    body = {"site": site.public_id, "version": 1, "granted": granted, "denied": denied}
    return post("/consent", {**body, **extra}, origin=ORIGIN)


def listing(ads_client: Any, placement: Any, query: str = "") -> list[Any]:
    answer = ads_client.get(
        f"/ads/listing?placement={placement.key}&ads=1{query}", HTTP_USER_AGENT=DESKTOP
    )
    assert answer.status_code == 200, answer.content
    return answer.json()["ads"]


def test_an_ads_only_grant_personalises_ads_but_not_analytics(ads_client, shop):
    placement, _ = published_campaign(shop, ads=1, target_devices=["desktop"])
    snapshot.load()
    answer = decide(shop, ["ads", "necessary"], ["analytics"])
    assert answer.status_code == 201
    grant = answer.json()
    assert len(grant["bid"]) == 32  # its token verifies: the listing below is personalised
    record = ConsentRecord.objects.get()
    assert (record.visitor_id, record.visitor_id_kind) == (grant["bid"], "browser")

    # Device targeting needs ads consent: the id with its token proves it.
    assert len(listing(ads_client, placement, f"&bid={grant['bid']}&token={grant['token']}")) == 1
    # Not without the token (anybody may know a browser id), nor without the id.
    assert listing(ads_client, placement, f"&bid={grant['bid']}&token={'0' * 64}") == []
    assert listing(ads_client, placement) == []

    # Analytics was refused: a page event claiming it with the id stays anonymous.
    batch = {
        "site": shop.public_id,
        "consent": {"analytics": True, "ads": True},
        "bid": grant["bid"],
        "token": grant["token"],
        "events": [{"type": "pageview", "url": "https://shop.example/"}],
    }
    assert post("/collect", batch, origin=ORIGIN).status_code == 202
    ((visitor, state),) = rows(
        "SELECT visitor_id, consent_state FROM page_events WHERE site_id = {s:String}",
        s=shop.public_id,
    )
    assert visitor != grant["bid"]
    assert state != "analytics"


def test_withdrawing_ads_ends_the_personalisation(ads_client, shop):
    placement, _ = published_campaign(shop, ads=1, target_devices=["desktop"])
    snapshot.load()
    grant = decide(shop, ["ads", "necessary"], ["analytics"]).json()
    query = f"&bid={grant['bid']}&token={grant['token']}"
    assert len(listing(ads_client, placement, query)) == 1
    withdrawal = decide(
        shop, ["necessary"], ["ads", "analytics"], bid=grant["bid"], token=grant["token"]
    )
    assert withdrawal.status_code == 201
    assert "bid" not in withdrawal.json()
    assert listing(ads_client, placement, query) == []
