"""The ad endpoints build absolute tracking and click URLs from the Host header: a host Django
would not serve (ALLOWED_HOSTS) is refused with a 400, so no answer ever carries URLs on a
host the request made up."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from tests.factories import published_campaign, published_video_campaign

pytestmark = [pytest.mark.mongodb, pytest.mark.django_db, pytest.mark.usefixtures("empty_delivery")]
ENDPOINTS = ["/ads/listing", "/ads/vast"]


@pytest.fixture
def placement_key(site: Any) -> str:
    placement, _ = published_campaign(site, ads=1)
    return placement.key


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:8000",
        "localhost.evil.example",  # "localhost" is allowed, not what merely starts with it
        "127.0.0.1@evil.example",  # not a host name at all
    ],
)
def test_a_host_not_allowed_is_refused_before_any_url_is_made(
    ads_client, placement_key, endpoint, host
):
    answer = ads_client.get(f"{endpoint}?placement={placement_key}", HTTP_HOST=host)
    assert answer.status_code == 400
    assert answer["Content-Type"] == "application/json"
    assert "ALLOWED_HOSTS" in answer.json()["error"]
    assert b"evil.example" not in answer.content


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost", "testserver"])
def test_allowed_hosts_get_urls_on_the_host_they_used(ads_client, placement_key, host):
    answer = ads_client.get(f"/ads/listing?placement={placement_key}", HTTP_HOST=host)
    assert answer.status_code == 200
    (ad,) = answer.json()["ads"]
    assert ad["click_url"].startswith(f"http://{host}/ads/click?t=")
    assert ad["tracking"]["impression"].startswith(f"http://{host}/ads/track?t=")


def test_the_check_follows_the_settings_as_django_does(ads_client, placement_key):
    listing = f"/ads/listing?placement={placement_key}"
    with override_settings(ALLOWED_HOSTS=[".ads.example.com"]):
        answer = ads_client.get(listing, HTTP_HOST="eu.ads.example.com")
        assert answer.status_code == 200
        assert answer.json()["ads"][0]["click_url"].startswith("http://eu.ads.example.com/")
        assert ads_client.get(listing, HTTP_HOST="localhost").status_code == 400
    # Like HttpRequest.get_host(): DEBUG with no ALLOWED_HOSTS serves local names only.
    with override_settings(DEBUG=True, ALLOWED_HOSTS=[]):
        assert ads_client.get(listing, HTTP_HOST="app.localhost:8000").status_code == 200
        assert ads_client.get(listing, HTTP_HOST="evil.example").status_code == 400


def test_vast_urls_are_on_the_allowed_host(ads_client, site):
    placement, _ = published_video_campaign(site, duration_seconds=15)
    document = ads_client.get(
        f"/ads/vast?placement={placement.key}", HTTP_HOST="127.0.0.1:8000"
    ).content.decode()
    assert "http://127.0.0.1:8000/ads/track?t=" in document
    assert "http://127.0.0.1:8000/ads/click?t=" in document
