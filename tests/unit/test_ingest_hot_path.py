"""What the /collect hot path caches per URL, referrer and day gives the same answers as
working it out every time: the page's parts, the referrer's source, the salt's day."""

from __future__ import annotations

from datetime import UTC, date, datetime

import msgspec
import pytest

from events.schemas import Consent
from ingest.enrichment import UserAgentInfo, classify_referrer
from ingest.http import TrackingResponse, json_response
from ingest.referrers import DIRECT_SOURCE
from ingest.services import RequestFacts, consent_state, page_url

FACTS = RequestFacts(
    ip="81.2.69.142",
    user_agent="test",
    agent=UserAgentInfo("Chrome", "120", "Windows", "10", "desktop", False),
    country="GB",
    region="",
    city="",
    received_ms=0,
    do_not_track=False,
)


@pytest.mark.parametrize("url", ["/relative/path", "shop.example/page", "https://", ""])
def test_a_page_url_must_be_absolute(url):
    assert page_url(url) is None


def test_a_page_url_gives_its_host_path_and_utm_tags():
    host, path, utm = page_url("https://Shop.Example/a/b?utm_source=News&x=1") or ("", "", {})
    assert (host, path, dict(utm)) == ("shop.example", "/a/b", {"utm_source": "News"})
    assert page_url("https://shop.example")[:2] == ("shop.example", "/")  # type: ignore[index]


def test_the_referrer_host_is_read_the_same_way_every_time():
    for _ in range(2):
        assert classify_referrer(
            referrer="https://www.google.com/search?q=x", page_host="shop.example", utm={}
        ) == ("Google", "search")
        assert classify_referrer(
            referrer="https://www.shop.example/cart", page_host="shop.example", utm={}
        ) == (DIRECT_SOURCE, "direct")


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 12, 3, 23, 59, 59, 999_000, tzinfo=UTC),
        datetime(2026, 12, 4, 0, 0, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
    ],
)
def test_the_day_of_a_request_is_its_utc_date(moment):
    facts = msgspec.structs.replace(FACTS, received_ms=int(moment.timestamp() * 1000))
    assert facts.day == moment.date()
    assert isinstance(facts.day, date)


@pytest.mark.parametrize(
    ("analytics", "ads", "state"),
    [
        (False, False, "none"),
        (True, False, "analytics"),
        (False, True, "ads"),
        (True, True, "analytics+ads"),
    ],
)
def test_consent_states(analytics, ads, state):
    assert consent_state(Consent(analytics=analytics, ads=ads)) == state


def test_each_response_has_headers_of_its_own():
    """A response's headers (CORS, Retry-After, Connection: close) must never reach another:
    TrackingResponse's default headers are a new dict per response."""
    refused = json_response(503, {"error": "full"})
    accepted = json_response(202, {"accepted": 1})
    refused.headers["connection"] = "close"
    assert accepted.headers == {}
    assert TrackingResponse(204).headers == {}
    assert refused.headers == {"retry-after": "5", "connection": "close"}
