"""The recommendations module in headless Chromium on the demo shop page, against a real server
in this process (Redis, the test database, ClickHouse on the direct path): popular pages for
everybody before a decision, the visit reported and the visitor's pages left out once they
accept, and never the page they are on."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from naboria import redis_client
from recs import keys
from recs.services import popular_pages_refresh
from tests.helpers import eventually
from tests.integration.test_collect_direct import rows

pytestmark = [
    pytest.mark.browser,
    pytest.mark.redis,
    pytest.mark.clickhouse,
    pytest.mark.usefixtures("clickhouse_schema", "direct_path", "recs_redis"),
]
DESKTOP_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)


@pytest.fixture
def shop(site_with_banner: Any) -> Any:
    site_with_banner.allowed_domains = ["127.0.0.1"]
    site_with_banner.recommendations_enabled = True
    site_with_banner.save()
    return site_with_banner


def popular(server: str, shop: Any, visitors: dict[str, int]) -> None:
    """Pageviews of each path by that many anonymous visitors (a browser version each, which
    makes a cookieless visitor of its own), sent to the server over HTTP (Playwright's loop
    runs in this thread), then the job."""
    for path, count in visitors.items():
        for number in range(count):
            body = {
                "site": shop.public_id,
                "events": [{"type": "pageview", "url": server + path}],
            }
            request = urllib.request.Request(
                f"{server}/collect",
                data=json.dumps(body).encode(),
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": DESKTOP_CHROME.replace("131.0.0.0", f"131.0.0.{number}"),
                },
            )
            with urllib.request.urlopen(request) as answer:
                assert answer.status == 202
    rows("SELECT 1")  # flushes the direct path's batch
    popular_pages_refresh(site_id=shop.public_id)


def shown(page: Any, personal: bool) -> list[str]:
    page.wait_for_function(
        f"document.getElementById('demo-recs').dataset.personal === '{str(personal).lower()}'"
    )
    return page.locator("#demo-recs a").all_text_contents()


def test_the_demo_shop_shows_popular_pages_the_visitor_has_not_seen(browser, server, shop):
    popular(server, shop, {"/demo/": 4, "/demo/tags/": 3, "/boots": 2, "/socks": 1})
    context = browser.new_context(user_agent=DESKTOP_CHROME, locale="en-US")
    page = context.new_page()
    signals: list[str] = []
    page.on(
        "request",
        lambda request: (
            signals.append(request.post_data or "")
            if request.url.endswith("/recs/signal")
            else None
        ),
    )
    page.goto(f"{server}/demo/?site={shop.public_id}")
    # Before a decision: everybody's popular pages but this one; nothing about the visitor.
    assert shown(page, personal=False) == ["/demo/tags/", "/boots", "/socks"]
    assert page.locator("#demo-recs a").first.get_attribute("href") == f"{server}/demo/tags/"
    assert signals == []

    page.get_by_role("dialog").get_by_role("button", name="Accept all").click()
    # The decision makes the module ask again, now with the browser id: the visit is reported.
    assert shown(page, personal=True) == ["/demo/tags/", "/boots", "/socks"]
    bid = page.evaluate(f"JSON.parse(localStorage['naboria:{shop.public_id}:id']).bid")
    visits = keys.visits(shop.public_id, bid)
    redis = redis_client.sync_client()
    assert eventually(lambda: redis.zscore(visits, "/demo/") is not None)
    assert json.loads(signals[0])["title"] == page.title()

    # Another page of the shop, then back: the page seen is left out from now on.
    page.goto(f"{server}/demo/tags/?site={shop.public_id}")
    assert eventually(lambda: redis.zscore(visits, "/demo/tags/") is not None)
    page.goto(f"{server}/demo/?site={shop.public_id}")
    assert shown(page, personal=True) == ["/boots", "/socks"]
    context.close()
