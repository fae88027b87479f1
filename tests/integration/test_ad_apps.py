"""Apps measured right (issue 3/6): an app fetches /ads/listing, keeps it while the ETag holds,
and shows its items again and again. Frequency caps count by the identity the listing decided
for, every display is an impression of its own (at most one per rotation), an edited creative
is a new listing, and a cached listing's tracking URLs never outlive their signature."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest

from ads import endpoints, serving
from ads.assets import first_party_asset_url
from ads.endpoints import ENDPOINTS as AD_ENDPOINTS
from ads.models import Ad
from ads.publishing import ads_publish
from ads.signing import sign_delivery
from ads.snapshot import current
from ads.snapshot import load as load_snapshot
from ingest import identity
from ingest.asgi import lean_application
from naboria import clickhouse
from sites.selectors import site_secrets_valid
from tests.factories import published_campaign
from tests.tracking_client import TrackingClient
from tests.unit.test_enrichment import WINDOWS_CHROME

pytestmark = [
    pytest.mark.mongodb,
    pytest.mark.clickhouse,
    pytest.mark.django_db,
    pytest.mark.usefixtures("clickhouse_schema", "direct_path", "empty_delivery"),
]
APP = "ShopApp/3.2 (iPhone; iOS 17.5)"


@pytest.fixture
def app_client() -> TrackingClient:
    return TrackingClient(lean_application(AD_ENDPOINTS), HTTP_USER_AGENT=APP)


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def impressions(site: Any) -> list[str]:
    result = clickhouse.get_client().query(
        "SELECT impression_id FROM ad_events WHERE site_id = {s:String}"
        " AND event_type = 'impression' ORDER BY impression_id",
        parameters={"s": site.public_id},
    )
    return [row[0] for row in result.result_rows]


def later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """The ad endpoints' clock, ``seconds`` ahead."""
    ahead = SimpleNamespace(time=lambda: time.time() + seconds)
    monkeypatch.setattr(endpoints, "time", ahead)


def test_a_consenting_app_is_frequency_capped_by_its_browser_id(app_client, site):
    placement, _ = published_campaign(site, ads=1, frequency_cap=2)
    bid = "app-browser-1"
    token = identity.issue_token(
        secret=site_secrets_valid(site=site)[0], bid=bid, site_id=site.public_id
    )
    query = f"/ads/listing?placement={placement.key}&bid={bid}&token={token}&ads=1"
    shown = 0
    for _ in range(3):
        ads = app_client.get(query).json()["ads"]
        if not ads:
            break
        # The app fires the tracking URL, which carries no browser id of its own.
        assert app_client.get(local(ads[0]["tracking"]["impression"])).status_code == 200
        shown += 1
    assert shown == 2  # the third listing found the campaign capped for this browser id


def test_each_display_of_a_cached_item_is_an_impression_of_its_own(app_client, site, monkeypatch):
    placement, _ = published_campaign(site, ads=1)  # rotation every 30 s
    (item,) = app_client.get(f"/ads/listing?placement={placement.key}").json()["ads"]
    pixel = local(item["tracking"]["impression"])
    assert app_client.get(pixel).status_code == 200
    answer = app_client.get(f"{pixel}&d=2")  # not a rotation later yet
    assert answer.status_code == 400
    assert "display 2" in answer.json()["error"]
    later(monkeypatch, 65)  # two rotations later: displays 2 and 3 were possible
    assert app_client.get(f"{pixel}&d=2").status_code == 200
    assert app_client.get(f"{pixel}&d=2").status_code == 200  # a retry counts once
    body = {"type": "impression", "impression_token": item["impression_token"], "display": 3}
    assert app_client.post("/ad-event", json.dumps(body)).status_code == 200
    assert app_client.get(f"{pixel}&d=4").status_code == 400
    assert app_client.get(f"{pixel}&d=x").status_code == 400
    first = item["impression"]
    assert impressions(site) == [first, f"{first}.2", f"{first}.3"]


def test_an_edited_creative_is_a_new_listing_not_a_304(app_client, site):
    placement, campaign = published_campaign(site, ads=1)
    url = f"/ads/listing?placement={placement.key}"
    first = app_client.get(url)
    assert app_client.get(url, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    ad = Ad.objects.get(campaign=campaign)
    ad.image_url = "https://cdn.example/winter-v2.png"
    ad.save()
    ads_publish(ads=[ad])
    load_snapshot()
    edited = app_client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    assert edited.status_code == 200
    assert edited["ETag"] != first["ETag"]
    # Served from Naboria's origin (ads.assets), named by the new address.
    new_image = first_party_asset_url("", "https://cdn.example/winter-v2.png")
    assert edited.json()["ads"][0]["image_url"].endswith(new_image)


def test_a_cached_listing_is_renewed_before_its_tracking_urls_expire(app_client, site, monkeypatch):
    placement, _ = published_campaign(site, ads=1)
    url = f"/ads/listing?placement={placement.key}"
    first = app_client.get(url)
    later(monkeypatch, 13 * 3600)  # past half the 24 h lifetime of its signatures
    renewed = app_client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    assert renewed.status_code == 200
    assert (
        renewed.json()["ads"][0]["impression_token"] != first.json()["ads"][0]["impression_token"]
    )


def test_a_delivery_shown_once_has_no_second_display(site, monkeypatch):
    """A page's stream rendering (rotation 0) has one display, however late the event."""
    placement, _ = published_campaign(site, ads=1)
    snapshot = current()
    slot = snapshot.slots_by_key[placement.key]
    issued = serving.delivery(snapshot.ads_for(slot)[0], slot, "web-1")
    body = {"type": "impression", "impression_token": sign_delivery(issued), "display": 2}
    client = TrackingClient(lean_application(AD_ENDPOINTS), HTTP_USER_AGENT=WINDOWS_CHROME)
    later(monkeypatch, 3600)
    answer = client.post("/ad-event", json.dumps(body))
    assert answer.status_code == 400
    assert impressions(site) == []
