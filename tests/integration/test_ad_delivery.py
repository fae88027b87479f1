"""Ad delivery end to end: publishing to MongoDB (secantusdb), each process's snapshot, the SSE
stream (first ad, changes pushed, resume), the mobile listing (ETag, signed tracking URLs), the
VAST endpoint (schema-valid), the click redirect (signed, expiring, no open redirect), consent
awareness and the admin's bulk pause."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from ads import signing, snapshot
from ads.documents import DeliveryAdDocument, DeliveryPlacementDocument
from ads.models import (
    Ad,
    AdStatus,
    Advertiser,
    Campaign,
    CampaignStatus,
    CreativeKind,
    Placement,
    VideoFile,
)
from ads.publishing import campaigns_publish, placements_publish, republish_all
from ads.services import ads_set_status
from sites.models import Site
from tests.factories import SiteFactory, campaign_form_data, published_campaign
from tests.helpers import ad_events, eventually

pytestmark = [
    pytest.mark.mongodb,
    pytest.mark.clickhouse,
    pytest.mark.usefixtures("clickhouse_schema", "direct_path", "empty_delivery"),
]
XSD = Path(__file__).resolve().parents[2] / "ads" / "data" / "vast_4.2.xsd"


ORIGIN = "http://127.0.0.1"


@pytest.fixture
def shop(site: Any) -> Any:
    site.allowed_domains = ["127.0.0.1", "shop.example"]
    site.save()
    return site


def local(url: str) -> str:
    """The path and query of an absolute URL the server made."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


@pytest.mark.django_db
def test_publishing_keeps_one_document_per_live_ad(shop):
    _, campaign = published_campaign(shop)
    documents = {document.ad_id: document.body for document in DeliveryAdDocument.objects}
    assert set(documents) == set(campaign.ads.values_list("pk", flat=True))
    body = next(iter(documents.values()))
    assert (body["campaign_id"], body["creative"]["kind"], body["site_ids"]) == (
        campaign.pk,
        "image",
        [shop.pk],
    )
    paused = campaign.ads.get(name="Ad 0")
    ads_set_status(ads=[paused], status=AdStatus.PAUSED)
    assert paused.pk not in {document.ad_id for document in DeliveryAdDocument.objects}
    # republish rebuilds MongoDB from PostgreSQL whatever it held.
    DeliveryAdDocument.objects.delete()
    assert republish_all() == (1, 1)
    assert DeliveryAdDocument.objects.count() == 1


@pytest.mark.django_db
def test_admin_bulk_pause_withdraws_a_campaign(shop, admin_client):
    _, campaign = published_campaign(shop)
    response = admin_client.post(
        reverse("admin:ads_campaign_changelist"),
        {"action": "pause", "_selected_action": [campaign.pk]},
    )
    assert response.status_code == 302
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.PAUSED
    assert DeliveryAdDocument.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("model", ["campaign", "ad", "placement"])
def test_admin_bulk_delete_withdraws_from_delivery(shop, admin_client, model):
    placement, campaign = published_campaign(shop)
    chosen = {"campaign": [campaign.pk], "ad": list(campaign.ads.values_list("pk", flat=True))}
    selected = chosen.get(model, [placement.pk])
    response = admin_client.post(
        reverse(f"admin:ads_{model}_changelist"),
        {"action": "delete_selected", "_selected_action": selected, "post": "yes"},
    )
    assert response.status_code == 302
    if model == "placement":
        assert DeliveryPlacementDocument.objects.count() == 0
    else:
        assert DeliveryAdDocument.objects.count() == 0


@pytest.mark.django_db
def test_a_placement_of_another_organization_is_never_published_for_a_campaign(shop):
    _, campaign = published_campaign(shop, ads=1)
    foreign = Placement.objects.create(site=cast(Site, SiteFactory()), name="Elsewhere")
    # A link made around the models' checks (raw SQL, a row from before them).
    Campaign.placements.through.objects.bulk_create(
        [Campaign.placements.through(campaign_id=campaign.pk, placement_id=foreign.pk)]
    )
    campaigns_publish(campaigns=[campaign])
    (document,) = DeliveryAdDocument.objects
    assert document.body["site_ids"] == [shop.pk]


@pytest.mark.django_db
def test_ads_admin_explains_what_to_fix(shop):
    _, campaign = published_campaign(shop, ads=0)
    ad = Ad(campaign=campaign, name="x", kind=CreativeKind.NATIVE, click_url="https://a.example/")
    with pytest.raises(ValidationError) as refused:
        ad.full_clean()
    messages = refused.value.message_dict
    assert messages["title"] == ["A native ad needs a title."]
    assert messages["call_to_action"] == ["A native ad needs a call to action."]


def read_events(response: http.client.HTTPResponse, count: int, timeout: float) -> list[dict]:
    """The next ``count`` SSE events (heartbeats skipped)."""
    events: list[dict] = []
    current: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while len(events) < count and time.monotonic() < deadline:
        try:
            line = response.fp.readline().decode().rstrip("\n")
        except TimeoutError:  # nothing sent within the socket's timeout
            break
        if not line:
            if current:
                events.append(current)
                current = {}
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(": ")
        current[field] = value
    return events


def open_stream(
    server: str, placement: Placement, timeout: float = 10, **headers: str
) -> http.client.HTTPResponse:
    address = urlsplit(server)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=timeout)
    connection.request(
        "GET",
        f"/ads/stream?placement={placement.key}&path=/shoes",
        headers={"Origin": ORIGIN, **headers},
    )
    return connection.getresponse()


def test_stream_sends_an_ad_at_once_and_pushes_changes(server, shop):
    placement, campaign = published_campaign(shop)
    stream = open_stream(server, placement)
    assert stream.status == 200
    assert stream.getheader("Content-Type") == "text/event-stream"
    (first,) = read_events(stream, 1, timeout=3)
    assert first["event"] == "ad"
    shown = json.loads(first["data"])
    assert shown["campaign"] == campaign.pk
    assert shown["click_url"].startswith(f"{server}/ads/click?t=")
    # The marketer pauses the ad on screen: the stream replaces it without waiting for the
    # rotation (30 s). How fast is measured by bench/ad_delivery.py, not here.
    ads_set_status(ads=Ad.objects.filter(pk=shown["ad"]), status=AdStatus.PAUSED)
    (second,) = read_events(stream, 1, timeout=5)
    assert json.loads(second["data"])["ad"] != shown["ad"]
    # Everything paused: the stream says there is nothing to show.
    ads_set_status(ads=Ad.objects.all(), status=AdStatus.PAUSED)
    (third,) = read_events(stream, 1, timeout=3)
    assert third["event"] == "none"
    stream.close()


def test_stream_resumes_from_last_event_id(server, shop):
    placement, _ = published_campaign(shop, ads=1)
    original = open_stream(server, placement)
    (first,) = read_events(original, 1, timeout=3)
    original.close()
    # Reconnecting with the id of an ad still live and not due: no new ad at once.
    resumed = open_stream(server, placement, timeout=1.5, **{"Last-Event-ID": first["id"]})
    assert read_events(resumed, 1, timeout=1.5) == []
    resumed.close()
    # A stale id (another version of the ad) gets a fresh ad at once.
    ad_id, version, shown_at = first["id"].split(".")
    stale = open_stream(
        server, placement, **{"Last-Event-ID": f"{ad_id}.{int(version) - 1}.{shown_at}"}
    )
    assert read_events(stale, 1, timeout=3)[0]["event"] == "ad"
    stale.close()


def test_stream_refuses_unknown_placements_and_foreign_origins(server, shop):
    placement, _ = published_campaign(shop, ads=1)
    address = urlsplit(server)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=5)
    connection.request("GET", "/ads/stream?placement=nope")
    answer = connection.getresponse()
    assert (answer.status, json.loads(answer.read())) == (
        404,
        {"error": "unknown placement 'nope'"},
    )
    refused = open_stream(server, placement, Origin="https://evil.example")
    assert refused.status == 403
    foreign_host = open_stream(server, placement, Host="evil.example")
    assert foreign_host.status == 400
    assert "ALLOWED_HOSTS" in json.loads(foreign_host.read())["error"]


@pytest.mark.django_db
def test_listing_has_etag_cache_headers_and_signed_tracking_urls(ads_client, shop):
    placement, campaign = published_campaign(shop)
    answer = ads_client.get(f"/ads/listing?placement={placement.key}")
    assert answer.status_code == 200
    assert answer["Cache-Control"] == "private, max-age=30"
    listing = answer.json()
    assert listing["rotation_seconds"] == 30
    assert {item["ad"] for item in listing["ads"]} == set(campaign.ads.values_list("pk", flat=True))
    again = ads_client.get(
        f"/ads/listing?placement={placement.key}", HTTP_IF_NONE_MATCH=answer["ETag"]
    )
    assert again.status_code == 304
    item = listing["ads"][0]
    pixel = local(item["tracking"]["impression"])
    assert ads_client.get(pixel).status_code == 200
    assert ads_client.get(pixel).status_code == 200  # retried: the same impression counts once
    assert eventually(lambda: ad_events(item["impression"]) == ["impression"])
    tampered = pixel[:-3] + ("AAA" if not pixel.endswith("AAA") else "BBB")
    assert ads_client.get(tampered).status_code == 400


@pytest.mark.django_db
def test_click_redirect_is_signed_expiring_and_records_the_click(ads_client, shop, monkeypatch):
    placement, _ = published_campaign(shop, ads=1)
    unseen, item = (
        ads_client.get(f"/ads/listing?placement={placement.key}").json()["ads"][0] for _ in range(2)
    )
    # The click of an ad whose impression was never reported still takes the visitor there,
    # and is not stored: it would count a click nobody saw.
    answer = ads_client.get(local(unseen["click_url"]))
    assert answer.status_code == 302
    assert ads_client.get(local(item["tracking"]["impression"])).status_code == 200
    path = local(item["click_url"])
    answer = ads_client.get(path)
    assert answer.status_code == 302
    assert answer["Location"] == "https://outdoor.example/landing?ad=0&src=naboria"
    assert eventually(lambda: ad_events(item["impression"]) == ["impression", "click"])
    assert ad_events(unseen["impression"]) == []
    # Only Naboria's own signed targets: a forged token is refused, never followed.
    forged = signing.TrackedImpression(
        impression="x",
        site=shop.public_id,
        campaign=1,
        ad=1,
        placement=1,
        creative="image",
        event="click",
        target="https://evil.example/",
    )
    forged_token = signing.sign(forged)
    assert ads_client.get(f"/ads/click?t={forged_token[:-2]}xx").status_code == 400
    monkeypatch.setattr(signing, "TOKEN_MAX_AGE_SECONDS", -1)
    assert ads_client.get(path).status_code == 400  # expired


@pytest.mark.django_db
def test_vast_endpoint_answers_schema_valid_documents(ads_client, shop):
    from lxml import etree  # type: ignore[import-untyped]

    schema = etree.XMLSchema(etree.parse(str(XSD)))
    placement, campaign = published_campaign(shop, ads=0)
    placement.formats = ["video"]
    placement.save()
    empty = ads_client.get(f"/ads/vast?placement={placement.key}")
    assert empty["Content-Type"] == "application/xml"
    schema.assertValid(etree.fromstring(empty.content))
    video = Ad.objects.create(
        campaign=campaign,
        name="Spot",
        kind=CreativeKind.VIDEO,
        title="Winter spot",
        duration_seconds=15,
        click_url="https://outdoor.example/video",
    )
    VideoFile.objects.create(ad=video, url="https://cdn.example/spot.mp4", width=640, height=360)
    placements_publish(placements=[placement])
    campaigns_publish(campaigns=[campaign])
    snapshot.load()
    document = ads_client.get(f"/ads/vast?placement={placement.key}").content
    tree = etree.fromstring(document)
    schema.assertValid(tree)  # as served: the error URL's macro included
    namespace = {"v": "http://www.iab.com/VAST"}
    assert (
        tree.findtext(".//v:MediaFile", namespaces=namespace).strip()
        == "https://cdn.example/spot.mp4"
    )
    impression = local(tree.findtext(".//v:Impression", namespaces=namespace).strip())
    assert ads_client.get(impression).status_code == 200
    start = next(
        element.text.strip()
        for element in tree.iterfind(".//v:Tracking", namespaces=namespace)
        if element.get("event") == "start"
    )
    assert ads_client.get(local(start)).status_code == 200
    serving_id = tree.findtext(".//v:AdServingId", namespaces=namespace)
    assert eventually(lambda: sorted(ad_events(serving_id)) == ["impression", "start"])


@pytest.mark.django_db
def test_without_ads_consent_only_context_targeting_applies(ads_client, site_with_banner):
    placement, campaign = published_campaign(site_with_banner, ads=1, target_devices=["desktop"])
    desktop = (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0 Safari/537.36"
    )
    claimed = ads_client.get(
        f"/ads/listing?placement={placement.key}&ads=1", HTTP_USER_AGENT=desktop
    ).json()
    assert claimed["ads"] == []  # a claim without a browser id and token is not believed
    campaign.target_devices = []
    campaign.target_countries = ["GB"]
    campaign.save()
    campaigns_publish(campaigns=[campaign])
    snapshot.load()
    british = ads_client.get(
        f"/ads/listing?placement={placement.key}", REMOTE_ADDR="81.2.69.142"
    ).json()
    assert len(british["ads"]) == 1  # country is context: allowed without consent


@pytest.mark.django_db
def test_frequency_cap_counts_stored_impressions_of_the_visitor(ads_client, shop):
    placement, _ = published_campaign(shop, ads=1, frequency_cap=2)
    seen = 0
    for _ in range(3):
        ads = ads_client.get(f"/ads/listing?placement={placement.key}").json()["ads"]
        if not ads:
            break
        assert ads_client.get(local(ads[0]["tracking"]["impression"])).status_code == 200
        seen += 1
    assert seen == 2  # the third listing found the campaign capped for this visitor


@pytest.mark.django_db
def test_the_streams_rendering_holds_the_listings_and_follows_a_new_version(shop):
    """The stream's event (JSON whose creative part is encoded once per ad version) holds what
    the listing's rendering holds, with each impression's own id and signed tokens; a
    republished creative is rendered anew."""
    from ads import serving

    placement, _ = published_campaign(shop, ads=1)

    def rendered() -> tuple[dict[str, Any], dict[str, Any], signing.Delivery]:
        published = snapshot.current()
        slot = published.slots_by_key[placement.key]
        ad = published.ads_for(slot)[0]
        issued = serving.delivery(ad, slot, serving.new_impression_id())
        streamed = serving.rendering_json(ad=ad, slot=slot, issued=issued, host=ORIGIN)
        listed = serving.rendering(ad=ad, slot=slot, issued=issued, host=ORIGIN)
        return json.loads(streamed), listed, issued

    def signed_parts(rendering: dict[str, Any]) -> tuple[signing.Delivery, str]:
        clicked = signing.unsign(urlsplit(rendering["click_url"]).query.removeprefix("t="))
        return signing.unsign_delivery(rendering["impression_token"]), clicked.impression

    tokens = {"impression_token", "click_url"}
    first, listed, issued = rendered()
    assert {key: first[key] for key in first.keys() - tokens} == {
        key: listed[key] for key in listed.keys() - tokens
    }
    assert first.keys() == listed.keys()
    assert signed_parts(first) == (issued, issued.impression)
    second, _, second_issued = rendered()
    assert second["impression"] != first["impression"]
    assert signed_parts(second) == (second_issued, second_issued.impression)
    Ad.objects.update(image_url="https://cdn.example/winter.png")
    campaigns_publish(campaigns=Campaign.objects.all())
    snapshot.load()
    third, listed, _ = rendered()
    assert third["image_url"] == listed["image_url"] != first["image_url"]


def test_a_stream_that_fails_ends_its_response_so_the_browser_reconnects(server, shop, monkeypatch):
    from ads import serving

    placement, campaign = published_campaign(shop, ads=1)

    async def unreachable(**_: Any) -> list[Any]:
        raise ConnectionError("counters unreachable")

    monkeypatch.setattr(serving, "decide", unreachable)
    failing = open_stream(server, placement)
    assert failing.status == 200
    # The response ends (a browser's EventSource then reconnects), rather than staying open
    # without ever sending an event (this read would time out).
    assert failing.read() == b""
    monkeypatch.undo()
    reconnected = open_stream(server, placement)
    (first,) = read_events(reconnected, 1, timeout=3)
    assert json.loads(first["data"])["campaign"] == campaign.pk
    reconnected.close()


def test_disconnected_streams_are_cleaned_up(server, shop):
    from prometheus_client import REGISTRY

    from ads.snapshot import changes

    def open_streams() -> float | None:
        return REGISTRY.get_sample_value("naboria_ad_streams_open")

    placement, _ = published_campaign(shop, ads=1)
    streams = [open_stream(server, placement) for _ in range(3)]
    for stream in streams:
        assert read_events(stream, 1, timeout=3)[0]["event"] == "ad"
    assert eventually(lambda: open_streams() == 3)
    for stream in streams:
        stream.close()
    # Each stream's task is cancelled and its subscription to changes dropped.
    assert eventually(lambda: open_streams() == 0 and len(changes) == 0)


@pytest.mark.django_db
def test_saving_a_campaign_in_the_admin_publishes_its_ads(shop, admin_client):
    placement = Placement.objects.create(site=shop, name="Top", sizes=["728x90"])
    advertiser = Advertiser.objects.create(organization=shop.organization, name="Bikes")
    form = {
        **campaign_form_data(advertiser, [placement], "Spring"),
        "ads-TOTAL_FORMS": 1,
        "ads-INITIAL_FORMS": 0,
        "ads-0-name": "Leaderboard",
        "ads-0-status": "active",
        "ads-0-kind": "html",
        "ads-0-click_url": "https://bikes.example/",
        "ads-0-width": 728,
        "ads-0-height": 90,
        "ads-0-html": '<p onclick="steal()">Ride <script>alert(1)</script>now</p>',
        "ads-0-duration_seconds": 0,
    }
    response = admin_client.post(reverse("admin:ads_campaign_add"), form)
    assert response.status_code == 302, response.content[:2000]
    ad = Ad.objects.get(name="Leaderboard")
    assert ad.html == "<p>Ride now</p>"  # sanitised on save
    (document,) = DeliveryAdDocument.objects(ad_id=ad.pk)
    assert document.body["creative"]["html"] == "<p>Ride now</p>"
    assert document.body["targeting"]["placement_ids"] == [placement.pk]
