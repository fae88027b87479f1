"""Cross-domain visitors in headless Chromium (issue 16 part 6, docs/cross-domain.md): a site on
two hosts that share no cookies nor storage (127.0.0.1 and localhost, both the test server), a
visitor following a link from one to the other: with analytics consent one visitor and one
decision across both, without it nothing crosses."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import pytest

from ingest import identity
from sites.selectors import site_secrets_valid
from tests.browser.test_tracker_and_banner import DESKTOP_CHROME, banner, page_rows, stored_state
from tests.helpers import eventually

pytestmark = [
    pytest.mark.browser,
    pytest.mark.clickhouse,
    pytest.mark.usefixtures("clickhouse_schema", "direct_path"),
]
HOSTS = ("127.0.0.1", "localhost")


@pytest.fixture
def shops(site_with_banner: Any) -> Any:
    site_with_banner.allowed_domains = list(HOSTS)
    site_with_banner.save()
    return site_with_banner


@pytest.fixture
def page(browser: Any, server: str, shops: Any) -> Iterator[Any]:
    context = browser.new_context(user_agent=DESKTOP_CHROME, locale="en-US")
    yield context.new_page()
    context.close()


@pytest.fixture
def url_on(server: str, shops: Any) -> Callable[..., str]:
    """url_on(host, path, extra): an address of the demo shop on that host."""
    port = urlsplit(server).port

    def url(host: str, path: str = "/demo/", extra: str = "") -> str:
        return f"http://{host}:{port}{path}?site={shops.public_id}{extra}"

    return url


def link_to(page: Any, href: str) -> None:
    page.evaluate(
        """href => {
          const link = Object.assign(document.createElement('a'), {id: 'other', href})
          link.textContent = 'Our other shop'
          document.body.prepend(link)
        }""",
        href,
    )


def restored(page: Any, href: str) -> bool:
    return page.get_attribute("#other", "href") == href


def identity_of(page: Any, site: Any) -> dict[str, Any] | None:
    stored = stored_state(page)["local"].get(f"naboria:{site.public_id}:id")
    return json.loads(stored) if stored else None


def test_with_consent_the_visitor_and_the_decision_cross_to_the_other_domain(page, url_on, shops):
    page.goto(url_on(HOSTS[0]))
    banner(page).get_by_role("button", name="Accept all").click()
    held = eventually(
        lambda: (identity_of(page, shops) or {}).get("link") and identity_of(page, shops)
    )
    bid = held["bid"]
    page.click("#nav-bags")  # a consented pageview on the first domain
    eventually(lambda: page_rows(shops, "visitor_id", "pathname = '/demo/bags'"))
    link_to(page, url_on(HOSTS[1], extra="&from=a#top"))
    with page.expect_request(lambda request: request.is_navigation_request()) as followed:
        page.click("#other")
    carried = followed.value.url
    assert f"_nb={bid}." in carried  # the decorated navigation
    page.wait_for_load_state()
    # Stripped before anything read it; the rest of the address is as the link had it.
    assert page.url == url_on(HOSTS[1], extra="&from=a#top")
    # The decision recorded on the first domain is the decision here: no banner, a cookie of
    # this host, and the same browser id.
    eventually(lambda: (identity_of(page, shops) or {}).get("bid") == bid)
    assert f"naboria_{shops.public_id}=" in stored_state(page)["cookies"]
    assert not banner(page).is_visible()
    landed = eventually(
        lambda: page_rows(
            shops,
            "visitor_id, consent_state, url",
            f"hostname = '{HOSTS[1]}' AND event_type = 'pageview'",
        )
    )
    assert [(visitor, consent) for visitor, consent, _ in landed] == [(bid, "analytics+ads")]
    assert "_nb" not in landed[0][2]
    consented = page_rows(shops, "DISTINCT visitor_id", "consent_state != 'none'")
    assert consented == [(bid,)]

    # The address each click leaves with (seen after the linker, then kept from leaving).
    page.evaluate(
        """() => addEventListener('click', event => {
          window.followed = event.target.closest('a').href
          event.preventDefault()
        })"""
    )
    for href, decorated in [
        (url_on(HOSTS[0], path="/demo/back"), True),  # the other domain of the site
        ("https://example.org/partner", False),  # another site
        (url_on(HOSTS[1], path="/demo/more"), False),  # this domain
    ]:
        link_to(page, href)
        page.click("#other")
        assert ("_nb=" in page.evaluate("window.followed")) is decorated, href
        # The decorated address lives for one navigation only: the link keeps its own.
        assert eventually(partial(restored, page, href))
        page.evaluate("document.getElementById('other').remove()")
    assert page.url == url_on(HOSTS[1], extra="&from=a#top")  # stayed


def test_a_visitor_who_consented_on_both_domains_continues_with_the_carried_id(page, url_on, shops):
    ids = {}
    for host in reversed(HOSTS):  # the second domain first: its own id and decision
        page.goto(url_on(host))
        banner(page).get_by_role("button", name="Accept all").click()
        ids[host] = eventually(
            lambda: (identity_of(page, shops) or {}).get("link") and identity_of(page, shops)
        )["bid"]
    assert ids[HOSTS[0]] != ids[HOSTS[1]]
    link_to(page, url_on(HOSTS[1], extra="&from=a"))
    page.click("#other")
    page.wait_for_url(url_on(HOSTS[1], extra="&from=a"))
    # The decision here grants analytics: the carried id replaces this domain's own.
    eventually(lambda: (identity_of(page, shops) or {}).get("bid") == ids[HOSTS[0]])
    assert (identity_of(page, shops) or {}).get("bid") == ids[HOSTS[0]]
    landed = "event_type = 'pageview' AND position(url, 'from=a') > 0"
    (visitor,) = eventually(lambda: page_rows(shops, "visitor_id", landed))[0]
    assert visitor == ids[HOSTS[0]]


def test_without_consent_no_identifier_crosses(page, url_on, shops):
    page.goto(url_on(HOSTS[0]))
    banner(page).get_by_role("button", name="Reject all").click()
    eventually(lambda: f"naboria_{shops.public_id}=" in stored_state(page)["cookies"])
    link_to(page, url_on(HOSTS[1]))
    with page.expect_request(lambda request: request.is_navigation_request()) as followed:
        page.click("#other")
    assert "_nb" not in followed.value.url  # no decoration without consent
    page.wait_for_load_state()
    banner(page).wait_for()  # nothing carried: this domain asks
    assert identity_of(page, shops) is None


def test_an_incoming_id_is_stripped_and_ignored_without_consent_here(page, url_on, shops):
    page.goto(url_on(HOSTS[1]))
    banner(page).get_by_role("button", name="Reject all").click()
    eventually(lambda: f"naboria_{shops.public_id}=" in stored_state(page)["cookies"])
    # A genuine id and link token (someone else's, from a shared link, say).
    bid = identity.issue_browser_id()
    link = identity.issue_link_token(
        secret=site_secrets_valid(site=shops)[0], bid=bid, site_id=shops.public_id
    )
    page.goto(url_on(HOSTS[1], extra=f"&_nb={bid}.{link}&shared=1"))
    page.wait_for_load_state()
    assert page.url == url_on(HOSTS[1], extra="&shared=1")
    assert identity_of(page, shops) is None
    assert not banner(page).is_visible()  # the decision here stands
    shared = "event_type = 'pageview' AND position(url, 'shared=1') > 0"
    (visitor, consent, url) = eventually(
        lambda: page_rows(shops, "visitor_id, consent_state, url", shared)
    )[0]
    assert (visitor != bid, consent) == (True, "none")
    assert "_nb" not in url
