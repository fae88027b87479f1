"""The VAST endpoint end to end: the document is valid as served, every beacon it advertises
(impression, playback events, viewability verdicts) is stored once, its signed error URL
records the player's error code, and video player SDKs that fetch from an origin of their own
(IMA) get the document while other foreign origins are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from lxml import etree  # type: ignore[import-untyped]

from ads import signing
from ads.vast import TRACKED_EVENTS, VIEWABILITY_EVENTS
from ingest.http import TRANSPARENT_GIF
from naboria import clickhouse
from tests.factories import published_video_campaign
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
IMA_ORIGIN = "https://imasdk.googleapis.com"


@pytest.fixture
def placement_key(site: Any) -> str:
    """A video placement of a site whose pages are on shop.example, with one video ad."""
    site.allowed_domains = ["shop.example"]
    site.save()
    placement, _ = published_video_campaign(site)
    return str(placement.key)


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def served(ads_client: TrackingClient, placement_key: str, **headers: str) -> Any:
    answer = ads_client.get(f"/ads/vast?placement={placement_key}", **headers)
    assert answer.status_code == 200, answer.content
    return etree.fromstring(answer.content)


def beacons(tree: Any) -> dict[str, str]:
    """The event each /ads/track URL of the document records, by that event's name."""
    urls = {"impression": tree.findtext(".//v:Impression", namespaces=NS)}
    for element in tree.iterfind(".//v:Tracking", namespaces=NS):
        urls[element.get("event")] = element.text
    for name, event in VIEWABILITY_EVENTS:
        urls[event] = tree.findtext(f".//v:ViewableImpression/v:{name}", namespaces=NS)
    return urls


def stored(impression: str, kind: str) -> list[tuple[str, int]]:
    return (
        clickhouse.get_client()
        .query(
            "SELECT event_type, error_code FROM ad_events "
            "WHERE impression_id = {i:String} AND event_type = {k:String}",
            parameters={"i": impression, "k": kind},
        )
        .result_rows
    )


def test_the_document_is_valid_as_served(ads_client, placement_key):
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    schema.assertValid(served(ads_client, placement_key))


def test_every_beacon_is_accepted_and_stored_once(ads_client, placement_key):
    tree = served(ads_client, placement_key)
    impression = tree.findtext(".//v:AdServingId", namespaces=NS)
    urls = beacons(tree)
    expected = {"impression", *TRACKED_EVENTS, "viewable", "notViewable", "viewUndetermined"}
    assert set(urls) == expected
    for url in urls.values():
        for _ in range(2):  # a player that retries, or fires an event again
            answer = ads_client.get(local(url))
            assert answer.status_code == 200, (url, answer.content)
            assert (answer["Content-Type"], answer.content) == ("image/gif", TRANSPARENT_GIF)
    assert eventually(lambda: sorted(ad_events(impression)) == sorted(expected))


def error_url(ads_client: TrackingClient, placement_key: str) -> tuple[str, str]:
    tree = served(ads_client, placement_key)
    return tree.findtext(".//v:AdServingId", namespaces=NS), tree.findtext(
        ".//v:InLine/v:Error", namespaces=NS
    )


def test_the_error_url_is_signed_and_records_the_code_once(ads_client, placement_key):
    impression, url = error_url(ads_client, placement_key)
    assert urlsplit(url).path == "/ads/vast-error"
    path, macro = local(url).rsplit("&code=", 1)
    assert macro == "%5BERRORCODE%5D"
    token = signing.unsign(path.split("t=", 1)[1])
    assert (token.event, token.impression) == ("error", impression)

    answer = ads_client.get(f"{path}&code=405")  # what a player that fills the macro sends
    assert answer.status_code == 200
    assert (answer["Content-Type"], answer.content) == ("image/gif", TRANSPARENT_GIF)
    assert eventually(lambda: stored(impression, "error") == [("error", 405)])
    # One error per delivery: a later one (or a retry) is the same event.
    assert ads_client.get(f"{path}&code=901").status_code == 200
    assert ads_client.get(f"{path}&code=405").status_code == 200
    assert stored(impression, "error") == [("error", 405)]


def test_an_error_url_fired_with_the_macro_unfilled_is_an_error_without_a_code(
    ads_client, placement_key
):
    impression, url = error_url(ads_client, placement_key)
    assert ads_client.get(local(url)).status_code == 200
    assert eventually(lambda: stored(impression, "error") == [("error", 900)])


@pytest.mark.parametrize(
    "code", ["", "abc", "99", "1000", "4050", "-1", "40%EF%BC%95", "%5B405%5D"]
)
def test_a_bad_or_missing_code_is_refused(ads_client, placement_key, code):
    impression, url = error_url(ads_client, placement_key)
    path = local(url).rsplit("&code=", 1)[0]
    assert ads_client.get(path).status_code == 400  # no code at all
    answer = ads_client.get(f"{path}&code={code}")
    assert answer.status_code == 400
    assert "VAST error code" in answer.json()["error"]
    assert stored(impression, "error") == []


def test_only_a_signed_error_url_records_an_error(ads_client, placement_key):
    tree = served(ads_client, placement_key)
    impression = tree.findtext(".//v:AdServingId", namespaces=NS)
    start = local(beacons(tree)["start"]).split("t=", 1)[1]
    # A tracking URL of another event is not an error URL; a tampered one is nobody's.
    assert ads_client.get(f"/ads/vast-error?t={start}&code=405").status_code == 400
    _, url = error_url(ads_client, placement_key)
    path = local(url).rsplit("&code=", 1)[0]
    assert ads_client.get(f"{path[:-2]}xx&code=405").status_code == 400
    assert ads_client.get("/ads/vast-error?code=405").status_code == 400
    assert stored(impression, "error") == []


@pytest.mark.parametrize("origin", [IMA_ORIGIN, "https://shop.example"])
def test_video_players_may_fetch_with_credentials(ads_client, placement_key, origin):
    answer = ads_client.get(f"/ads/vast?placement={placement_key}", HTTP_ORIGIN=origin)
    assert answer.status_code == 200
    assert answer["Access-Control-Allow-Origin"] == origin
    assert answer["Access-Control-Allow-Credentials"] == "true"
    tree = etree.fromstring(answer.content)
    start = beacons(tree)["start"]
    assert ads_client.get(local(start), HTTP_ORIGIN=origin).status_code == 200
    error = tree.findtext(".//v:InLine/v:Error", namespaces=NS)
    assert ads_client.get(local(error), HTTP_ORIGIN=origin).status_code == 200


@pytest.mark.parametrize(
    "origin", ["https://rival.example", "http://imasdk.googleapis.com", "https://x.googleapis.com"]
)
def test_other_origins_are_refused(ads_client, placement_key, origin):
    answer = ads_client.get(f"/ads/vast?placement={placement_key}", HTTP_ORIGIN=origin)
    assert answer.status_code == 403
    assert "not an allowed domain" in answer.json()["error"]
