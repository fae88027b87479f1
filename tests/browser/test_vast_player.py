"""A real VAST player library against the running server, in headless Chromium: the dailymotion
vast-client (tracker/node_modules, a devDependency) fetches the VAST document with credentials
from a player page on the IMA SDK's origin or on the site's own domain, parses it, and its
VASTTracker fires every beacon of a playback - impression, viewability, quartiles, pause and
resume, mute and unmute, skip, complete, error - each of which the server answers and stores
exactly once, even when the player reloads and reports the same playback again.

The player page and the library are served to the browser by the test (page.route) under the
player's origin. The VAST request and the beacons go to the real server through an HTTPS front
the test stands in for, as a TLS proxy would (X-Forwarded-Proto): vast-client refuses a plain
HTTP document on an HTTPS page, and the IMA SDK's origin is an HTTPS one."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from ads import snapshot
from ads.models import Ad, CreativeKind, VideoFile
from ads.publishing import campaigns_publish, placements_publish
from naboria import clickhouse
from tests.conftest import CHROMIUM
from tests.factories import published_campaign
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
    placement, campaign = published_campaign(site, ads=0)
    placement.formats = ["video"]
    placement.save()
    video = Ad.objects.create(
        campaign=campaign,
        name="Spot",
        kind=CreativeKind.VIDEO,
        title="Winter spot",
        duration_seconds=20,
        click_url="https://outdoor.example/video",
    )
    VideoFile.objects.create(ad=video, url="https://cdn.example/spot.mp4", width=640, height=360)
    placements_publish(placements=[placement])
    campaigns_publish(campaigns=[campaign])
    snapshot.load()
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


@pytest.mark.parametrize("origin", ["https://imasdk.googleapis.com", "https://shop.example"])
def test_vast_client_plays_the_served_ad_and_every_beacon_is_stored_once(
    server, placement_key, origin
):
    from playwright.sync_api import Page, Route, sync_playwright

    front = server.replace("http://", "https://")
    documents: list[str] = []
    answers: dict[str, list[int]] = {}  # by URL the browser requested from the server

    def player_files(route: Route) -> None:
        if urlsplit(route.request.url).path == "/vast-client.js":
            route.fulfill(path=VAST_CLIENT, content_type="text/javascript")
        else:
            route.fulfill(body=PLAYER_PAGE, content_type="text/html")

    def through_tls_front(route: Route) -> None:
        headers = {**route.request.all_headers(), "x-forwarded-proto": "https"}
        response = route.fetch(url=route.request.url.replace(front, server, 1), headers=headers)
        if urlsplit(route.request.url).path == "/ads/vast":
            documents.append(response.text())
        route.fulfill(response=response)

    def play(page: Page, **source: str) -> str:
        page.goto(f"{origin}/player.html")
        page.wait_for_function("() => window.vast")
        return str(page.evaluate(PLAYBACK, source))

    def beacons_answered(page: Page, times: int) -> None:
        # Routes are answered while Playwright is called: wait in the page, not in time.sleep.
        for _ in range(200):
            beacons = [statuses for url, statuses in answers.items() if "/ads/vast?" not in url]
            if len(beacons) == len(EVERY_EVENT) and all(len(s) == times for s in beacons):
                return
            page.wait_for_timeout(50)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        context = browser.new_context()
        # A public page reaching a loopback server (this test's) needs the visitor's leave
        # (Chromium's Local Network Access); a real ad server is no loopback address.
        context.grant_permissions(["local-network-access"])
        page = context.new_page()
        page.route(f"{origin}/**", player_files)
        page.route(f"{front}/**", through_tls_front)
        page.on(
            "response",
            lambda response: (
                answers.setdefault(response.url, []).append(response.status)
                if response.url.startswith(front)
                else None
            ),
        )
        impression = play(page, url=f"{front}/ads/vast?placement={placement_key}")
        beacons_answered(page, times=1)
        # A new document fires the same URLs again (a page never loads one image URL twice).
        assert play(page, xml=documents[0]) == impression
        beacons_answered(page, times=2)
        browser.close()

    vast = [statuses for url, statuses in answers.items() if "/ads/vast?" in url]
    assert vast == [[200]]
    beacons = {url: statuses for url, statuses in answers.items() if "/ads/vast?" not in url}
    assert len(beacons) == len(EVERY_EVENT)
    assert all(statuses == [200, 200] for statuses in beacons.values()), beacons
    # vast-client fills in only the bracketed macro: its error comes without a code (900).
    (error,) = [url for url in beacons if "/ads/vast-error?" in url]
    assert error.endswith("&code=%5BERRORCODE%5D")
    expected = sorted((kind, 900 if kind == "error" else 0) for kind in EVERY_EVENT)
    assert eventually(lambda: stored(impression) == expected), stored(impression)
