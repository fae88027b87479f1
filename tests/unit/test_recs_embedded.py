"""Recommendation signals in the embedded profile (no REDIS_URL): the in-process Redis keeps
them with the same expiry and bounds as a server, and the endpoints' reads see them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from asgiref.sync import async_to_sync
from django.test import override_settings

from naboria import redis_client
from recs import keys
from recs.selectors import visited_paths
from recs.services import ad_signal_record, visit_record


@pytest.fixture
def embedded_redis() -> Iterator[None]:
    with override_settings(REDIS_URL=""):
        redis_client.reset()
        yield
    redis_client.reset()


@pytest.mark.usefixtures("embedded_redis")
def test_signals_expire_and_are_read_back_without_a_redis_server():
    for number in range(keys.MAX_VISITS + 1):
        async_to_sync(visit_record)(
            site_id="s1", bid="b1", path=f"/p{number}", title="", at_ms=number
        )
    async_to_sync(ad_signal_record)(
        site_id="s1", bid="b1", kind="click", campaign=1, ad=2, impression="i", at_ms=5
    )
    visited = async_to_sync(visited_paths)(site_id="s1", bid="b1")
    assert len(visited) == keys.MAX_VISITS
    assert "/p0" not in visited
    assert async_to_sync(visited_paths)(site_id="s2", bid="b1") == set()
    client = redis_client.sync_client()  # jobs see what the endpoints wrote
    assert 0 < client.ttl(keys.visits("s1", "b1")) <= keys.VISITS_TTL_SECONDS
    assert 0 < client.ttl(keys.ad_signals("s1", "b1", "click")) <= keys.AD_SIGNALS_TTL_SECONDS
