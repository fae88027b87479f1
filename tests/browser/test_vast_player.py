"""A real VAST player library against the running server, in headless Chromium: the dailymotion
vast-client (tracker/node_modules, a devDependency) fetches the VAST document with credentials
from a player page on the IMA SDK's origin or on the site's own domain, parses it, and its
VASTTracker fires every beacon of a playback - impression, viewability, quartiles, pause and
resume, mute and unmute, skip, complete, error - each of which the server answers and stores
exactly once, even when the player reloads and reports the same playback again. A wrapper ad
is followed to the third party's VAST, whose ad the player plays with our beacons merged in,
the click tracking included.

The player page and the library are served to the browser by the test (page.route) under the
player's origin, and so is the third party's ad server. The VAST request and the beacons go to
the real server through an HTTPS front the test stands in for, as a TLS proxy would
(X-Forwarded-Proto): vast-client refuses a plain HTTP document on an HTTPS page, and the IMA
SDK's origin is an HTTPS one."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from ads import snapshot
from ads.models import Ad
from ads.publishing import campaigns_publish
from naboria import clickhouse
from tests.conftest import CHROMIUM
from tests.factories import published_video_campaign
from tests.helpers import eventually

pytestmark = [
    pytest.mark.browser,
    pytest.mark.clickhouse,
    pytest.mark.mongodb,
    pytest.mark.usefixtures("clickhouse_schema", "direct_path", "empty_delivery"),
]
VAST_CLIENT = (
    Path(__file__).resolve().parents[2]
    / "tracker/node_modules/@dailymotion/vast-client/dist/vast-client.js"
)
PLAYER_PAGE = """<!doctype html><title>player</title>
<script type="module">
  import { VASTClient, VASTParser, VASTTracker } from '/vast-client.js'
  window.vast = { VASTClient, VASTParser, VASTTracker }
</script>"""
# A playback as a player reports it: every VASTTracker method that fires a beacon of ours. The
# ad is fetched from ``url``, or parsed from ``xml``: a player that reloads with the document
# it already had and reports the same playback again.
PLAYBACK = """async ({ url, xml }) => {
  const { VASTClient, VASTParser, VASTTracker } = window.vast
  const client = new VASTClient()
  const response = xml
    ? await new VASTParser().parseVAST(new DOMParser().parseFromString(xml, 'text/xml'))
    : await client.get(url, { withCredentials: true })
  const ad = response.ads[0]
  const creative = ad.creatives.find((creative) => creative.type === 'linear')
  const tracker = new VASTTracker(client, ad, creative)
  window.tracker = tracker  // for a click, later
  tracker.trackImpression()
  tracker.trackViewableImpression()
  tracker.trackNotViewableImpression()
  tracker.trackUndeterminedImpression()
  for (const second of [1, 5, 10, 15]) tracker.setProgress(second)
  tracker.setPaused(true)
  tracker.setPaused(false)
  tracker.setMuted(true)
  tracker.setMuted(false)
  tracker.complete()
  tracker.skip()
  tracker.error({ ERRORCODE: 405 })
  return ad.adServingId
}"""
EVERY_EVENT = [
    "complete",
    "error",
    "firstQuartile",
    "impression",
    "midpoint",
    "mute",
    "notViewable",
    "pause",
    "resume",
    "skip",
    "start",
    "thirdQuartile",
    "unmute",
    "viewUndetermined",
    "viewable",
]


@pytest.fixture
def placement_key(site: Any) -> str:
    site.allowed_domains = ["shop.example"]
    site.consent_banner_enabled = False
    site.save()
    placement, _ = published_video_campaign(site)
    return str(placement.key)


def stored(impression: str) -> list[tuple[str, int]]:
    return sorted(
        clickhouse.get_client()
        .query(
            "SELECT event_type, error_code FROM ad_events WHERE impression_id = {i:String}",
            parameters={"i": impression},
        )
        .result_rows
    )


class Player:
    """A player page on ``origin`` in Chromium, reaching the server through its HTTPS front:
    the VAST documents it got and the statuses of every URL it requested from the server."""

    def __init__(self, page: Any, server: str, origin: str) -> None:
        self.page, self.server, self.origin = page, server, origin
        self.front = server.replace("http://", "https://")
        self.documents: list[str] = []
        self.answers: dict[str, list[int]] = {}  # by URL the browser requested from the server
        page.route(f"{origin}/**", self._player_files)
        page.route(f"{self.front}/**", self._through_tls_front)
        page.on("response", self._answered)

    def _player_files(self, route: Any) -> None:
        if urlsplit(route.request.url).path == "/vast-client.js":
            route.fulfill(path=VAST_CLIENT, content_type="text/javascript")
        else:
            route.fulfill(body=PLAYER_PAGE, content_type="text/html")

    def _through_tls_front(self, route: Any) -> None:
        headers = {**route.request.all_headers(), "x-forwarded-proto": "https"}
        response = route.fetch(
            url=route.request.url.replace(self.front, self.server, 1), headers=headers
        )
        if urlsplit(route.request.url).path == "/ads/vast":
            self.documents.append(response.text())
        route.fulfill(response=response)

    def _answered(self, response: Any) -> None:
        if response.url.startswith(self.front):
            self.answers.setdefault(response.url, []).append(response.status)

    def play(self, **source: str) -> str:
        self.page.goto(f"{self.origin}/player.html")
        self.page.wait_for_function("() => window.vast")
        return str(self.page.evaluate(PLAYBACK, source))

    def beacons(self) -> dict[str, list[int]]:
        return {url: statuses for url, statuses in self.answers.items() if "/ads/vast?" not in url}

    def beacons_answered(self, count: int, times: int) -> None:
        # Routes are answered while Playwright is called: wait in the page, not in time.sleep.
        for _ in range(200):
            beacons = self.beacons().values()
            if len(beacons) == count and all(len(statuses) == times for statuses in beacons):
                return
            self.page.wait_for_timeout(50)


@contextmanager
def player(server: str, origin: str) -> Iterator[Player]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        context = browser.new_context()
        # A public page reaching a loopback server (this test's) needs the visitor's leave
        # (Chromium's Local Network Access); a real ad server is no loopback address.
        context.grant_permissions(["local-network-access"])
        yield Player(context.new_page(), server, origin)
        browser.close()


@pytest.mark.parametrize("origin", ["https://imasdk.googleapis.com", "https://shop.example"])
def test_vast_client_plays_the_served_ad_and_every_beacon_is_stored_once(
    server, placement_key, origin
):
    with player(server, origin) as session:
        impression = session.play(url=f"{session.front}/ads/vast?placement={placement_key}")
        session.beacons_answered(len(EVERY_EVENT), times=1)
        # A new document fires the same URLs again (a page never loads one image URL twice).
        assert session.play(xml=session.documents[0]) == impression
        session.beacons_answered(len(EVERY_EVENT), times=2)

    vast = [statuses for url, statuses in session.answers.items() if "/ads/vast?" in url]
    assert vast == [[200]]
    beacons = session.beacons()
    assert len(beacons) == len(EVERY_EVENT)
    assert all(statuses == [200, 200] for statuses in beacons.values()), beacons
    # vast-client fills in only the bracketed macro: its error comes without a code (900).
    (error,) = [url for url in beacons if "/ads/vast-error?" in url]
    assert error.endswith("&code=%5BERRORCODE%5D")
    expected = sorted((kind, 900 if kind == "error" else 0) for kind in EVERY_EVENT)
    assert eventually(lambda: stored(impression) == expected), stored(impression)


THIRD_PARTY = "https://ads.third.example"
# The third party's ad, as its ad server answers the wrapper's tag.
THIRD_PARTY_AD = f"""<?xml version="1.0" encoding="UTF-8"?>
<VAST version="4.2" xmlns="http://www.iab.com/VAST"><Ad id="partner-1"><InLine>
<AdSystem>Partner</AdSystem><Impression>{THIRD_PARTY}/impression</Impression>
<AdServingId>partner-serving-1</AdServingId><AdTitle>Partner spot</AdTitle>
<Creatives><Creative><Linear><Duration>00:00:20</Duration><MediaFiles>
<MediaFile delivery="progressive" type="video/mp4" width="640" height="360">
{THIRD_PARTY}/spot.mp4</MediaFile>
</MediaFiles><VideoClicks><ClickThrough>https://partner.example/landing</ClickThrough></VideoClicks>
</Linear><UniversalAdId idRegistry="unknown">unknown</UniversalAdId></Creative></Creatives>
</InLine></Ad></VAST>"""


def test_vast_client_follows_a_wrapper_and_fires_our_beacons_and_click_tracking(
    server, placement_key
):
    origin = "https://shop.example"
    video = Ad.objects.get(name="Spot")
    video.video_files.all().delete()
    video.click_url = ""
    video.vast_tag_url = f"{THIRD_PARTY}/vast?id=7&cb=[CACHEBUSTING]"
    video.save()
    campaigns_publish(campaigns=[video.campaign])
    snapshot.load()
    third_party: list[str] = []

    def third_party_server(route: Any) -> None:
        third_party.append(urlsplit(route.request.url).path)
        cors = {"access-control-allow-origin": origin, "access-control-allow-credentials": "true"}
        if urlsplit(route.request.url).path == "/vast":
            route.fulfill(body=THIRD_PARTY_AD, content_type="application/xml", headers=cors)
        else:
            route.fulfill(body=b"", content_type="image/gif", headers=cors)

    with player(server, origin) as session:
        session.page.route(f"{THIRD_PARTY}/**", third_party_server)
        # The site's own consent platform granted ads: wrappers may be served.
        url = f"{session.front}/ads/vast?placement={placement_key}&ads=1"
        assert session.play(url=url) == "partner-serving-1"  # the third party's ad plays
        session.beacons_answered(len(EVERY_EVENT), times=1)
        # The viewer clicks: the click-through is the partner's, the click is ours too.
        landing = session.page.evaluate(
            "() => new Promise((done) => {"
            " window.tracker.on('clickthrough', done); window.tracker.click() })"
        )
        session.beacons_answered(len(EVERY_EVENT) + 1, times=1)

    assert landing == "https://partner.example/landing"
    (document,) = session.documents
    assert "<Wrapper" in document
    (impression,) = re.findall(r'<ViewableImpression id="([0-9a-f]+)"', document)
    assert third_party[0] == "/vast"
    assert "/impression" in third_party  # the partner counts its own impression
    beacons = session.beacons()
    assert all(statuses == [200] for statuses in beacons.values()), beacons
    expected = sorted(
        [(kind, 900 if kind == "error" else 0) for kind in EVERY_EVENT] + [("click", 0)]
    )
    assert eventually(lambda: stored(impression) == expected), stored(impression)
