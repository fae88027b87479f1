"""VAST wrappers end to end: a video ad that plays a third party's VAST tag is served as a Wrapper
valid as served, only to viewers with ads consent (the others get another ad, or none), and
every beacon it carries - impression, playback, viewability, error and the click tracking,
which counts only after the impression - is stored once. Delivery documents published before
wrappers existed still load."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from lxml import etree  # type: ignore[import-untyped]

from ads import signing, snapshot
from ads.delivery import LiveAd
from ads.documents import DeliveryAdDocument
from ads.models import Ad, Campaign, CreativeKind, Placement, VideoFile
from ads.publishing import campaigns_publish, placements_publish
from ads.vast import TRACKED_EVENTS, VIEWABILITY_EVENTS
from ingest import identity
from ingest.http import TRANSPARENT_GIF
from sites.selectors import site_secrets_valid
from tests.factories import published_campaign
from tests.helpers import ad_events, eventually
from tests.tracking_client import TrackingClient

pytestmark = [
    pytest.mark.mongodb,
    pytest.mark.clickhouse,
    pytest.mark.django_db,
    pytest.mark.usefixtures("clickhouse_schema", "direct_path", "empty_delivery"),
]
XSD = Path(__file__).resolve().parents[2] / "ads" / "data" / "vast_4.2.xsd"
NS = {"v": "http://www.iab.com/VAST"}
TAG = "https://ads.third.example/vast?id=7&cb=[CACHEBUSTING]"
SERVED_TAG = "https://ads.third.example/vast?id=7&cb=%5BCACHEBUSTING%5D"
REQUESTS = 20


def _video_placement(site: Any, **campaign_fields: Any) -> tuple[Placement, Campaign]:
    placement, campaign = published_campaign(site, ads=0, **campaign_fields)
    placement.formats = ["video"]
    placement.save()
    return placement, campaign


def _wrapper(campaign: Campaign) -> Ad:
    return Ad.objects.create(
        campaign=campaign, name="Third-party spot", kind=CreativeKind.VIDEO, vast_tag_url=TAG
    )


def _hosted(campaign: Campaign) -> Ad:
    video = Ad.objects.create(
        campaign=campaign,
        name="Own spot",
        kind=CreativeKind.VIDEO,
        title="Own spot",
        duration_seconds=20,
        click_url="https://outdoor.example/video",
    )
    VideoFile.objects.create(ad=video, url="https://cdn.example/spot.mp4", width=640, height=360)
    return video


def _publish(placement: Placement, *campaigns: Campaign) -> None:
    placements_publish(placements=[placement])
    campaigns_publish(campaigns=campaigns)
    snapshot.load()


@pytest.fixture
def wrapped(site: Any) -> str:
    """A video placement whose only ad is a wrapper: its key."""
    placement, campaign = _video_placement(site)
    _wrapper(campaign)
    _publish(placement, campaign)
    return str(placement.key)


def consenting(site: Any) -> str:
    """The query of a player whose viewer's browser id was given ads consent."""
    bid = "player-browser-1"
    token = identity.issue_token(
        secret=site_secrets_valid(site=site)[0], bid=bid, site_id=site.public_id
    )
    return f"&bid={bid}&token={token}&ads=1"


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def served(ads_client: TrackingClient, key: str, query: str = "") -> Any:
    answer = ads_client.get(f"/ads/vast?placement={key}{query}")
    assert answer.status_code == 200, answer.content
    return etree.fromstring(answer.content)


def kind_of(tree: Any) -> str:
    """ "Wrapper", "InLine", or "none" for the empty answer."""
    ads = tree.xpath("/v:VAST/v:Ad/*", namespaces=NS)
    return etree.QName(ads[0]).localname if ads else "none"


def test_a_wrapper_is_valid_as_served_and_carries_our_beacons(ads_client, site, wrapped):
    tree = served(ads_client, wrapped, consenting(site))
    etree.XMLSchema(etree.parse(str(XSD))).assertValid(tree)
    assert kind_of(tree) == "Wrapper"
    assert tree.findtext(".//v:Wrapper/v:VASTAdTagURI", namespaces=NS) == SERVED_TAG
    impression = tree.xpath("//v:ViewableImpression/@id", namespaces=NS)[0]
    # Every URL but the tag is a signed Naboria beacon of this delivery.
    beacons = {
        "impression": tree.findtext(".//v:Wrapper/v:Impression", namespaces=NS),
        "error": tree.findtext(".//v:Wrapper/v:Error", namespaces=NS),
        "click": tree.findtext(".//v:VideoClicks/v:ClickTracking", namespaces=NS),
    }
    assert urlsplit(beacons["error"]).path == "/ads/vast-error"
    for event, url in beacons.items():
        token = signing.unsign(local(url).split("t=", 1)[1].split("&", 1)[0])
        assert (token.event, token.impression, token.target) == (event, impression, "")
    assert tree.findtext(".//v:VideoClicks/v:ClickThrough", namespaces=NS) is None


def test_without_ads_consent_no_wrapper_is_served(ads_client, site, wrapped):
    assert kind_of(served(ads_client, wrapped)) == "none"
    # Consent to analytics is not consent to ads.
    analytics_only = consenting(site).replace("&ads=1", "")
    assert kind_of(served(ads_client, wrapped, analytics_only)) == "none"
    assert kind_of(served(ads_client, wrapped, consenting(site))) == "Wrapper"


def test_a_claim_without_a_recorded_decision_gets_no_wrapper(ads_client, site_with_banner):
    placement, campaign = _video_placement(site_with_banner)
    _wrapper(campaign)
    _publish(placement, campaign)
    assert kind_of(served(ads_client, placement.key, "&ads=1")) == "none"
    assert kind_of(served(ads_client, placement.key, consenting(site_with_banner))) == "none"


def test_without_ads_consent_another_ad_is_served_instead(ads_client, site, wrapped):
    # The wrapper's campaign outranks the other: with consent it always wins.
    placement = Placement.objects.get(key=wrapped)
    wrapping = Campaign.objects.get(placements=placement)
    wrapping.priority = 9
    wrapping.save()
    other = Campaign.objects.create(
        advertiser=wrapping.advertiser, name="Own video", status="active", priority=5
    )
    other.placements.add(placement)
    _hosted(other)
    _publish(placement, wrapping, other)

    without = [kind_of(served(ads_client, wrapped)) for _ in range(REQUESTS)]
    assert without == ["InLine"] * REQUESTS
    query = consenting(site)
    assert [kind_of(served(ads_client, wrapped, query)) for _ in range(REQUESTS)] == [
        "Wrapper"
    ] * REQUESTS


def test_campaigns_of_the_same_priority_leave_the_wrapper_out_too(ads_client, site, wrapped):
    placement = Placement.objects.get(key=wrapped)
    wrapping = Campaign.objects.get(placements=placement)
    other = Campaign.objects.create(
        advertiser=wrapping.advertiser, name="Own video", status="active"
    )
    other.placements.add(placement)
    _hosted(other)
    _publish(placement, wrapping, other)

    assert {kind_of(served(ads_client, wrapped)) for _ in range(REQUESTS)} == {"InLine"}
    query = consenting(site)
    # Equal shares: both, with consent (missing one in 20 draws: 2 in a million).
    assert {kind_of(served(ads_client, wrapped, query)) for _ in range(REQUESTS)} == {
        "InLine",
        "Wrapper",
    }


def test_every_wrapper_beacon_is_accepted_and_stored_once(ads_client, site, wrapped):
    tree = served(ads_client, wrapped, consenting(site))
    impression = tree.xpath("//v:ViewableImpression/@id", namespaces=NS)[0]
    urls = {"impression": tree.findtext(".//v:Wrapper/v:Impression", namespaces=NS)}
    for element in tree.iterfind(".//v:Tracking", namespaces=NS):
        urls[element.get("event")] = element.text
    for name, event in VIEWABILITY_EVENTS:
        urls[event] = tree.findtext(f".//v:ViewableImpression/v:{name}", namespaces=NS)
    urls["click"] = tree.findtext(".//v:VideoClicks/v:ClickTracking", namespaces=NS)
    expected = {"impression", *TRACKED_EVENTS, "viewable", "notViewable", "viewUndetermined"}
    assert set(urls) == {*expected, "click"}

    # A click before its impression counts toward nothing: refused, not stored.
    early = ads_client.get(local(urls["click"]))
    assert early.status_code == 409
    assert "impression" in early.json()["error"]
    for name in ["impression", *sorted(expected - {"impression"}), "click"]:
        for _ in range(2):  # a player that retries, or fires an event again
            answer = ads_client.get(local(urls[name]))
            assert answer.status_code == 200, (name, answer.content)
            assert (answer["Content-Type"], answer.content) == ("image/gif", TRANSPARENT_GIF)
    assert eventually(lambda: sorted(ad_events(impression)) == sorted({*expected, "click"}))

    error = tree.findtext(".//v:Wrapper/v:Error", namespaces=NS)
    path = local(error).rsplit("&code=", 1)[0]
    assert ads_client.get(f"{path}&code=303").status_code == 200  # "no ads from the wrapper"
    assert eventually(lambda: "error" in ad_events(impression))


def test_click_links_and_click_beacons_keep_to_their_endpoints(ads_client, site, wrapped):
    click_tracking = local(
        served(ads_client, wrapped, consenting(site)).findtext(
            ".//v:VideoClicks/v:ClickTracking", namespaces=NS
        )
    )
    # A beacon has nowhere to send the viewer: it is no click link.
    redirect = ads_client.get(click_tracking.replace("/ads/track?", "/ads/click?"))
    assert redirect.status_code == 400
    # A click link, with its target, still redirects and is no beacon.
    banner, _ = published_campaign(site, ads=1)
    item = ads_client.get(f"/ads/listing?placement={banner.key}").json()["ads"][0]
    answer = ads_client.get(local(item["click_url"]).replace("/ads/click?", "/ads/track?"))
    assert answer.status_code == 400
    assert answer.json()["error"] == "click links redirect: use /ads/click"


def test_documents_published_before_wrappers_still_load_and_serve(ads_client, site):
    placement, campaign = _video_placement(site)
    video = _hosted(campaign)
    _publish(placement, campaign)
    published = DeliveryAdDocument.objects(ad_id=video.pk)
    assert published.get().body["creative"]["vast_tag_url"] == ""
    published.update(unset__body__creative__vast_tag_url=True)  # as published before wrappers
    assert "vast_tag_url" not in published.get().body["creative"]
    current = snapshot.load()

    (loaded,) = current.ads_for(current.slots_by_key[placement.key])
    assert (loaded.creative.vast_tag_url, loaded.creative.is_wrapper) == ("", False)
    tree = served(ads_client, placement.key)
    assert kind_of(tree) == "InLine"
    assert tree.findtext(".//v:MediaFile", namespaces=NS) == "https://cdn.example/spot.mp4"


def test_a_wrapper_round_trips_through_its_delivery_document(site):
    placement, campaign = _video_placement(site)
    wrapper = _wrapper(campaign)
    _publish(placement, campaign)
    (document,) = DeliveryAdDocument.objects(ad_id=wrapper.pk)
    loaded = LiveAd.from_document(document.body)
    assert (loaded.creative.vast_tag_url, loaded.creative.media_files) == (TAG, ())
    assert loaded.creative.is_wrapper
