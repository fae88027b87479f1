"""Enrichment on sample user agents, IPs and referrers (event time: test_event_time.py)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from ingest.enrichment import classify_referrer, client_ip, describe_user_agent, utm_parameters
from ingest.geo import locate
from ingest.referrers import DIRECT_SOURCE as DIRECT
from ingest.referrers import canonical_source, source_aliases

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
WINDOWS_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
ANDROID_PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
HEADLESS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/126.0.0.0 Safari/537.36"
)


@pytest.mark.parametrize(
    ("user_agent", "browser", "os", "device", "bot"),
    [
        (IPHONE, "Mobile Safari", "iOS", "mobile", False),
        (WINDOWS_CHROME, "Chrome", "Windows", "desktop", False),
        (ANDROID_TABLET, "Chrome", "Android", "tablet", False),
        (ANDROID_PHONE, "Chrome Mobile", "Android", "mobile", False),
        (GOOGLEBOT, "Googlebot", "Other", "desktop", True),
        (HEADLESS, "HeadlessChrome", "Linux", "desktop", True),
        ("curl/8.5.0", "curl", "Other", "desktop", True),
        ("", "Other", "Other", "unknown", True),
    ],
)
def test_user_agents(user_agent, browser, os, device, bot):
    info = describe_user_agent(user_agent)
    assert (info.browser, info.os, info.device_type, info.is_bot) == (browser, os, device, bot)


def test_versions_are_major_only():
    assert describe_user_agent(WINDOWS_CHROME).browser_version == "126"
    assert describe_user_agent(IPHONE).os_version == "17"


@pytest.mark.parametrize(
    ("ip", "country"),
    [
        ("8.8.8.8", "US"),
        ("81.2.69.142", "GB"),
        ("195.154.0.1", "FR"),
        # Google's Frankfurt range: registered in Ireland (the registries' data), located in
        # Germany by the city database, which wins.
        ("2a00:1450:4001:81b::200e", "DE"),
        ("127.0.0.1", ""),
        ("10.0.0.1", ""),
        ("not an ip", ""),
    ],
)
def test_country_from_ip(ip, country):
    # Region and city are tests/unit/test_geo.py's: they depend on the shipped database.
    assert locate(ip).country == country


def test_client_ip_trusts_only_the_configured_number_of_proxies():
    forwarded = "198.51.100.7, 203.0.113.1"
    assert (
        client_ip(remote_addr="10.0.0.2", forwarded_for=forwarded, trusted_proxies=0) == "10.0.0.2"
    )
    assert (
        client_ip(remote_addr="10.0.0.2", forwarded_for=forwarded, trusted_proxies=1)
        == "203.0.113.1"
    )
    assert (
        client_ip(remote_addr="10.0.0.2", forwarded_for=forwarded, trusted_proxies=2)
        == "198.51.100.7"
    )


@pytest.mark.parametrize(
    ("referrer", "page", "expected"),
    [
        ("https://www.google.com/search?q=x", "https://shop.example/", ("Google", "search")),
        ("https://duckduckgo.com/", "https://shop.example/", ("DuckDuckGo", "search")),
        ("https://t.co/abc", "https://shop.example/", ("Twitter", "social")),
        ("https://l.instagram.com/?u=x", "https://shop.example/", ("Instagram", "social")),
        ("https://mail.google.com/mail/u/0/", "https://shop.example/", ("Gmail", "email")),
        (
            "https://blog.example.org/post",
            "https://shop.example/",
            ("blog.example.org", "referral"),
        ),
        ("https://shop.example/cart", "https://shop.example/checkout", (DIRECT, "direct")),
        ("", "https://shop.example/", (DIRECT, "direct")),
        (
            "https://www.google.com/",
            "https://shop.example/?utm_source=Newsletter&utm_medium=email",
            ("newsletter", "email"),
        ),
        ("", "https://shop.example/?utm_source=google&utm_medium=cpc", ("Google", "paid")),
        ("", "https://shop.example/?utm_source=GOOGLE&utm_medium=cpc", ("Google", "paid")),
        ("", "https://shop.example/?utm_source=www.google.de", ("Google", "referral")),
        ("", "https://shop.example/?utm_source=fb&utm_medium=social", ("Facebook", "social")),
        ("", "https://shop.example/?utm_source=direct", (DIRECT, "referral")),
        (
            "",
            "https://shop.example/?utm_source=partner&utm_medium=whatever",
            ("partner", "referral"),
        ),
    ],
)
def test_referrer_classification(referrer, page, expected):
    parts = urlsplit(page)
    utm = utm_parameters(parts.query)
    assert classify_referrer(referrer=referrer, page_host=parts.hostname, utm=utm) == expected


@pytest.mark.parametrize(
    ("written", "source"),
    [
        ("Google", "Google"),
        ("google", "Google"),
        (" GOOGLE ", "Google"),
        ("google.com", "Google"),
        ("www.google.de", "Google"),
        ("duckduckgo", "DuckDuckGo"),
        ("t.co", "Twitter"),
        ("fb", "Facebook"),
        ("", DIRECT),
        ("direct", DIRECT),
        ("(none)", DIRECT),
        ("Direct / None", DIRECT),
        ("Newsletter", "newsletter"),
        ("www.Partner.example", "partner.example"),
    ],
)
def test_a_source_has_one_spelling(written, source):
    assert canonical_source(written) == source


def test_every_alias_of_the_migration_names_a_source_as_ingestion_does():
    for alias, source in source_aliases().items():
        assert canonical_source(alias) == source, alias
