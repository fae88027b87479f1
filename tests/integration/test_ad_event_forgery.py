"""Only what the ad server delivered counts (issue 3/6): the scenarios of the independent check,
replayed against the real endpoints, the real counters and the stored rows.

Each ad event must carry the impression token its delivery came with (ads.signing); the ad's
facts are taken from it, event ids are derived by the server, and bots are stored but never
counted toward caps."""

from __future__ import annotations

import json
import uuid
from typing import Any, cast

import pytest
from asgiref.sync import async_to_sync

from ads import signing
from ads.counters import get_counters
from naboria import clickhouse
from sites.models import Site
from tests.factories import OrganizationFactory, SiteFactory, published_campaign
from tests.tracking_client import TrackingClient

pytestmark = [
    pytest.mark.mongodb,
    pytest.mark.clickhouse,
    pytest.mark.django_db,
    pytest.mark.usefixtures("clickhouse_schema", "direct_path", "empty_delivery"),
]
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.fixture
def shop(site: Any) -> Any:
    site.allowed_domains = ["shop.example"]
    site.save()
    return site


def stored(site: Any, *, bots_only: bool = False) -> int:
    query = "SELECT count() FROM ad_events WHERE site_id = {s:String} AND is_bot >= {b:UInt8}"
    result = clickhouse.get_client().query(
        query, parameters={"s": site.public_id, "b": int(bots_only)}
    )
    return int(result.result_rows[0][0])


def delivered(client: TrackingClient, placement: Any) -> list[dict[str, Any]]:
    answer = client.get(f"/ads/listing?placement={placement.key}")
    assert answer.status_code == 200, answer.content
    ads: list[dict[str, Any]] = answer.json()["ads"]
    return ads


def post(client: TrackingClient, body: dict[str, Any], **meta: str) -> Any:
    return client.post("/ad-event", json.dumps(body), content_type="text/plain", **meta)


def impressions_counted(campaign_id: int) -> int:
    """Today's count in the delivery counters (read directly: decisions cache it a second)."""
    counted = async_to_sync(get_counters().campaign_delivery)([campaign_id])
    return counted[campaign_id].today


def test_a_made_up_impression_is_refused_and_counts_toward_nothing(ads_client, shop):
    _, campaign = published_campaign(shop, ads=1, daily_cap=50)
    forged = {
        "type": "impression",
        "site": shop.public_id,
        "impression": "made-up",
        "campaign": campaign.pk,
        "ad": campaign.ads.get().pk,
    }
    for _ in range(55):
        answer = post(ads_client, forged)
        assert answer.status_code == 400
        assert "impression_token" in answer.json()["error"]
    answer = post(ads_client, {**forged, "impression_token": "bm90IGEgdG9rZW4:abc:def"})
    assert answer.status_code == 403
    assert "impression_token" in answer.json()["error"]
    assert stored(shop) == 0
    assert impressions_counted(campaign.pk) == 0


def test_a_tampered_or_expired_token_is_refused(ads_client, shop, monkeypatch):
    placement, _ = published_campaign(shop, ads=1)
    (item,) = delivered(ads_client, placement)
    token = item["impression_token"]
    signature = token.rpartition(":")[2]
    other = signing.sign_delivery(
        signing.Delivery(item["impression"], shop.public_id, 999_999, item["ad"], 0, "image")
    )
    # The payload of another token under this token's signature: the HMAC does not match.
    spliced = other.rpartition(":")[0] + ":" + signature
    for bad in (spliced, token[:-2] + ("AA" if not token.endswith("AA") else "BB")):
        answer = post(ads_client, {"type": "impression", "impression_token": bad})
        assert answer.status_code == 403, bad
    monkeypatch.setattr(signing, "TOKEN_MAX_AGE_SECONDS", -1)
    answer = post(ads_client, {"type": "impression", "impression_token": token})
    assert answer.status_code == 403
    assert "expired" in answer.json()["error"]
    assert stored(shop) == 0


def test_a_tracking_url_token_is_not_an_impression_token(ads_client, shop):
    placement, _ = published_campaign(shop, ads=1)
    (item,) = delivered(ads_client, placement)
    tracking_token = item["tracking"]["impression"].split("t=", 1)[1]
    answer = post(ads_client, {"type": "click", "impression_token": tracking_token})
    assert answer.status_code == 403
    assert stored(shop) == 0


def test_the_ads_facts_and_event_id_come_from_the_token(ads_client, shop):
    placement, campaign = published_campaign(shop, ads=1)
    (item,) = delivered(ads_client, placement)
    told = {
        "type": "click",
        "impression_token": item["impression_token"],
        "campaign": 424242,
        "ad": 1,
        "placement": 9,
        "impression": "someone-elses",
    }
    shown = {"type": "impression", "impression_token": item["impression_token"]}
    assert post(ads_client, shown).status_code == 200
    ids = set()
    for _ in range(40):  # a fresh id per request used to defeat the deduplication
        answer = post(ads_client, {**told, "id": str(uuid.uuid4())})
        assert answer.status_code == 200, answer.content
        ids.add(answer.json()["event_id"])
    assert len(ids) == 1
    assert stored(shop) == 2  # the impression and one click
    row = clickhouse.get_client().query(
        "SELECT impression_id, campaign_id, ad_id, placement_id, toString(event_id) FROM ad_events"
        " WHERE site_id = {s:String} AND event_type = 'click'",
        parameters={"s": shop.public_id},
    )
    assert row.result_rows == [
        (item["impression"], campaign.pk, item["ad"], placement.pk, ids.pop())
    ]


def test_another_organizations_site_cannot_post_this_sites_ad_events(ads_client, shop):
    placement, campaign = published_campaign(shop, ads=1, daily_cap=50)
    (item,) = delivered(ads_client, placement)
    rival = cast(
        Site, SiteFactory(organization=OrganizationFactory(), allowed_domains=["rival.example"])
    )
    body = {"type": "impression", "impression_token": item["impression_token"]}
    answer = post(ads_client, body, HTTP_ORIGIN="https://rival.example")
    assert answer.status_code == 403
    assert "not an allowed domain" in answer.json()["error"]
    assert stored(shop) == 0
    assert stored(rival) == 0
    assert impressions_counted(campaign.pk) == 0
    assert post(ads_client, body, HTTP_ORIGIN="https://shop.example").status_code == 200
    assert impressions_counted(campaign.pk) == 1


def test_bot_impressions_are_stored_but_never_counted_toward_caps(ads_client, shop):
    placement, campaign = published_campaign(shop, ads=1, daily_cap=3)
    for _ in range(5):
        (item,) = delivered(ads_client, placement)
        body = {"type": "impression", "impression_token": item["impression_token"]}
        assert post(ads_client, body, HTTP_USER_AGENT=GOOGLEBOT).status_code == 200
    assert stored(shop, bots_only=True) == 5
    assert impressions_counted(campaign.pk) == 0
    # The campaign still serves people, and their impressions count.
    (item,) = delivered(ads_client, placement)
    body = {"type": "impression", "impression_token": item["impression_token"]}
    assert post(ads_client, body).status_code == 200
    assert impressions_counted(campaign.pk) == 1


def test_clicks_of_ads_whose_impression_was_never_reported_are_refused(ads_client, shop):
    """40 clicks with no impression used to make a 97.6 % CTR: a click counts only after the
    impression of its delivery."""
    placement, _ = published_campaign(shop, ads=1)
    unseen = [delivered(ads_client, placement)[0] for _ in range(40)]
    for item in unseen:
        answer = post(ads_client, {"type": "click", "impression_token": item["impression_token"]})
        assert answer.status_code == 409
        assert "no impression" in answer.json()["error"]
    assert stored(shop) == 0
    # Reported in order, the same delivery's click is stored.
    item = unseen[0]
    for kind in ("impression", "click"):
        body = {"type": kind, "impression_token": item["impression_token"]}
        assert post(ads_client, body).status_code == 200
    assert stored(shop) == 2
