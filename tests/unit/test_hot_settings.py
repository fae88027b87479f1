"""The hot path's copy of its settings (ingest.hot_settings) follows every change, as the
settings themselves do: what a request reads is never a stale copy."""

from __future__ import annotations

from django.conf import settings
from django.test import override_settings

from ingest.hot_settings import HOT, NAMES
from ingest.http import TrackingRequest
from ingest.services import request_facts


def test_the_copy_holds_the_settings_and_follows_their_changes():
    assert {name: getattr(HOT, name) for name in NAMES} == {
        name: getattr(settings, name) for name in NAMES
    }
    original = HOT.INGEST_TRUSTED_PROXIES
    with override_settings(INGEST_TRUSTED_PROXIES=original + 2, INGEST_ACK_TIMEOUT_SECONDS=0.25):
        assert original + 2 == HOT.INGEST_TRUSTED_PROXIES
        assert HOT.INGEST_ACK_TIMEOUT_SECONDS == 0.25
    assert original == HOT.INGEST_TRUSTED_PROXIES


def test_a_request_reads_the_settings_in_force():
    request = TrackingRequest(
        method="POST",
        path="/collect",
        query={},
        headers={"x-forwarded-for": "81.2.69.142, 10.0.0.7", "user-agent": "test"},
        body=b"",
        remote_addr="10.0.0.8",
    )
    with override_settings(INGEST_TRUSTED_PROXIES=0):
        assert request_facts(request=request).ip == "10.0.0.8"
    with override_settings(INGEST_TRUSTED_PROXIES=2):
        assert request_facts(request=request).ip == "81.2.69.142"
