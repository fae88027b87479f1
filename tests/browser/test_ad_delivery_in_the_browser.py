"""An ad delivered over SSE in headless Chromium: the demo page's placement slot renders the
banner the stream sends, its impression is stored in ClickHouse by the tracker, and a click goes
through Naboria's signed redirect, which stores the click and lands on the advertiser's page."""

from __future__ import annotations

import pytest

from ads.assets import first_party_asset_url
from naboria import clickhouse
from tests.conftest import CHROMIUM
from tests.factories import published_campaign
from tests.helpers import ad_events, eventually

pytestmark = [
    pytest.mark.browser,
    pytest.mark.clickhouse,
    pytest.mark.mongodb,
    pytest.mark.usefixtures("clickhouse_schema", "direct_path", "empty_delivery"),
]


def test_banner_from_the_stream_renders_and_its_impression_and_click_land(server, site):
    from playwright.sync_api import sync_playwright

    site.allowed_domains = ["127.0.0.1"]
    site.consent_banner_enabled = False
    site.save()
    _, campaign = published_campaign(site, ads=1)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        page = browser.new_page()
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(f"{server}/demo/?site={site.public_id}")
        ad = page.locator("#sse-slot a[data-naboria-impression]")
        ad.wait_for(timeout=10_000)
        # The banner's image comes from Naboria's origin, never from the advertiser's server.
        image = first_party_asset_url(server, "https://cdn.example/0.png")
        assert ad.locator("img").get_attribute("src") == image
        assert eventually(lambda: image in requested)
        impression = ad.get_attribute("data-naboria-impression")
        assert eventually(lambda: ad_events(impression) == ["impression"])
        # Stored with the campaign the token names (the element carries no campaign of its own).
        assert clickhouse.get_client().query(
            "SELECT campaign_id FROM ad_events WHERE impression_id = {i:String}",
            parameters={"i": impression},
        ).result_rows == [(campaign.pk,)]
        # The click opens a tab through the redirect (the advertiser's site itself is not
        # reachable from the test machine).
        with page.context.expect_event(
            "response", predicate=lambda response: "/ads/click?" in response.url
        ) as redirect:
            ad.click()
        assert redirect.value.status == 302
        assert (
            redirect.value.headers["location"] == "https://outdoor.example/landing?ad=0&src=naboria"
        )
        assert eventually(lambda: "click" in ad_events(impression))
        # The page itself asked nothing of any origin but Naboria's (the click has its own tab).
        assert [url for url in requested if not url.startswith(server)] == []
        assert ad_events(impression).count("click") == 1  # the redirect counted it, once
        browser.close()
