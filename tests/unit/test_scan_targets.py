"""The cookie scan's URL rules: only http(s) URLs on the site's allowed domains are visited
(no SSRF from a marketer-edited field), first and third party, the non-public address guard,
and the scanner's user agent counting as a bot."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from ingest.bots import classify_user_agent
from scans.browser import USER_AGENT, _resolves_to_public_addresses
from scans.models import ScanConfig
from scans.targets import home_urls, is_first_party, url_refusal
from sites.models import host_allowed
from tests.factories import SiteFactory

DOMAINS = ["shop.example", "*.blog.example", "admin.example:8443"]


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example/",
        "http://shop.example:8080/cart?x=1",
        "https://blog.example/post",
        "https://www.blog.example/post",
        "https://admin.example:8443/",
        "https://SHOP.example/upper",
    ],
)
def test_urls_on_the_allowed_domains_are_visited(url):
    assert url_refusal(url=url, allowed_domains=DOMAINS) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "not on the site's allowed domains"),
        ("http://localhost:6379/", "not on the site's allowed domains"),
        ("https://shop.example.evil.test/", "not on the site's allowed domains"),
        ("https://evilshop.example/", "not on the site's allowed domains"),
        ("https://admin.example:9000/", "not on the site's allowed domains"),
        ("https://user:pw@shop.example/", "user name or password"),
        ("file:///etc/passwd", "only http and https"),
        ("javascript:alert(1)", "only http and https"),
        ("ftp://shop.example/", "only http and https"),
        ("https:///nohost", "names no host"),
        ("http://[::1/", "is not a URL"),
        ("http://shop.example:99999/", "is not a URL"),
    ],
)
def test_other_urls_are_refused_with_a_reason(url, reason):
    refusal = url_refusal(url=url, allowed_domains=DOMAINS)
    assert refusal is not None
    assert reason in refusal


def test_home_pages_come_from_the_domains_that_name_one_host():
    assert home_urls(allowed_domains=DOMAINS, scheme="https") == [
        "https://shop.example/",
        "https://admin.example:8443/",
    ]


def test_host_allowed_is_the_rule_of_the_tracking_endpoints_too():
    assert host_allowed(host="www.blog.example", port=None, domains=DOMAINS)
    assert host_allowed(host="admin.example", port=None, domains=DOMAINS)  # an Origin, no port
    assert not host_allowed(host="admin.example", port=80, domains=DOMAINS)
    assert not host_allowed(host="blog.example.com", port=None, domains=DOMAINS)


def test_first_and_third_party():
    page = "www.shop.example"
    assert is_first_party(host=".shop.example", page_host=page, allowed_domains=DOMAINS)
    assert is_first_party(host="www.shop.example", page_host=page, allowed_domains=DOMAINS)
    assert is_first_party(host="cdn.blog.example", page_host=page, allowed_domains=DOMAINS)
    assert not is_first_party(host=".doubleclick.net", page_host=page, allowed_domains=DOMAINS)
    assert not is_first_party(host="example", page_host="shop.other", allowed_domains=DOMAINS)


def test_non_public_addresses_are_recognised():
    for host in ("127.0.0.1", "localhost", "10.1.2.3", "169.254.169.254", "::1", "fd00::1"):
        assert not _resolves_to_public_addresses(host), host
    assert not _resolves_to_public_addresses("does-not-exist.invalid")
    assert _resolves_to_public_addresses("8.8.8.8")


def test_the_scanner_is_a_bot_for_naboria_itself():
    # Its own pageviews stay out of the site's reports.
    assert classify_user_agent(USER_AGENT.format(major=156)).is_bot


@pytest.mark.django_db
def test_a_configured_url_off_the_site_is_refused_by_the_form():
    site: Any = SiteFactory(allowed_domains=["shop.example"])
    config = ScanConfig(site=site, urls=["https://shop.example/ok", "http://10.0.0.5/admin"])
    with pytest.raises(ValidationError) as refused:
        config.full_clean()
    assert "10.0.0.5" in str(refused.value.message_dict["urls"])
    ScanConfig(site=site, urls=["https://shop.example/ok"]).full_clean()
