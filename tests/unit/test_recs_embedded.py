"""Recommendation signals in the embedded profile (no REDIS_URL): the in-process Redis keeps
them with the same expiry and bounds as a server, and the endpoints' reads see them."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from asgiref.sync import async_to_sync
from django.test import override_settings

from naboria import redis_client
from recs import keys
from recs.selectors import forget_popular, recommended_items
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
    client = redis_client.sync_client()  # jobs see what the endpoints wrote
    visited = client.zrange(keys.visits("s1", "b1"), 0, -1)
    assert len(visited) == keys.MAX_VISITS
    assert b"/p0" not in visited
    popular = [
        {"path": path, "url": f"https://s.example{path}", "title": path}
        for path in ("/p0", "/p1", "/p2", "/new")
    ]
    client.set(keys.popular("s1"), json.dumps(popular))
    forget_popular()

    def recommended(visitor: str | None) -> list[str]:
        found = async_to_sync(recommended_items)(
            site_id="s1", current_path="/p2", visitor=visitor, limit=5
        )
        return [item["path"] for item in found]

    assert recommended("b1") == ["/p0", "/new"]  # /p0's visit went with the oldest
    assert recommended(None) == ["/p0", "/p1", "/new"]
    assert 0 < client.ttl(keys.visits("s1", "b1")) <= keys.VISITS_TTL_SECONDS
    assert 0 < client.ttl(keys.ad_signals("s1", "b1", "click")) <= keys.AD_SIGNALS_TTL_SECONDS
