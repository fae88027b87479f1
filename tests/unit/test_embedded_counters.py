"""The embedded profile's delivery counters (a SQLite file): caps, frequency and the events
already counted survive a restart, expire when they should, and agree with Redis's semantics."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync

from ads import counters
from ads.counters import SqliteCounters


def test_counts_and_claims_survive_a_new_process(tmp_path: Path) -> None:
    path = tmp_path / "counters.sqlite3"
    first = SqliteCounters(path)
    for _ in range(3):
        async_to_sync(first.record_impression)(campaign_id=7, visitor_id="v", period_seconds=3600)
    assert async_to_sync(first.claim)("shop:event-1") is True
    # Another process (a restarted web process) opens the same file.
    script = (
        "import sys, django; django.setup(); from asgiref.sync import async_to_sync as a;"
        "from ads.counters import SqliteCounters as S; c = S(sys.argv[1]);"
        "d = a(c.campaign_delivery)([7])[7];"
        "print(d.today, d.lifetime, a(c.frequency)('v', {7: 3600})[7], a(c.claim)('shop:event-1'))"
    )
    answer = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "naboria.settings_test"},
    )
    assert answer.stdout.split() == ["3", "3", "3", "False"]
    first.close()


def test_expired_counts_start_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SqliteCounters(tmp_path / "counters.sqlite3")
    now = time.time()
    monkeypatch.setattr(counters.time, "time", lambda: now)
    async_to_sync(store.record_impression)(campaign_id=1, visitor_id="v", period_seconds=60)
    assert async_to_sync(store.claim)("k") is True
    assert async_to_sync(store.claim)("k") is False
    monkeypatch.setattr(counters.time, "time", lambda: now + counters.SEEN_EVENT_SECONDS + 1)
    assert async_to_sync(store.claim)("k") is True  # the claim expired with the window
    # That frequency period has ended: the new one counts from zero.
    assert async_to_sync(store.frequency)("v", {1: 60}) == {1: 0}
    async_to_sync(store.record_impression)(campaign_id=1, visitor_id="v", period_seconds=60)
    assert async_to_sync(store.frequency)("v", {1: 60}) == {1: 1}
    assert async_to_sync(store.campaign_delivery)([1])[1].lifetime == 2
    store.close()


def test_without_redis_the_counters_live_in_the_var_dir(settings, tmp_path: Path) -> None:
    settings.REDIS_URL = ""
    settings.VAR_DIR = tmp_path
    counters.reset_counters()
    try:
        assert isinstance(counters.get_counters(), SqliteCounters)
        assert (tmp_path / counters.COUNTERS_FILE).exists()
    finally:
        counters.reset_counters()
