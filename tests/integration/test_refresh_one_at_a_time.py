"""Session-facts refreshes run one at a time across processes (the periodic job and a one-off
``manage.py`` one once collided on a scratch table and failed), and a refresh clears the scratch
tables a killed one left."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from django.test import override_settings

from analytics import session_facts
from ingest.storage import insert_rows
from naboria import clickhouse, locks

from .test_reports import page

pytestmark = [pytest.mark.clickhouse, pytest.mark.usefixtures("clickhouse_schema")]


def scratch_tables() -> set[str]:
    rows = clickhouse.get_client().query(
        "SELECT name FROM system.tables"
        " WHERE database = currentDatabase() AND startsWith(name, 'session_facts_scratch_')"
    )
    return {name for (name,) in rows.result_rows}


@pytest.mark.redis
def test_a_refresh_waits_for_the_one_running_and_clears_what_a_killed_one_left():
    site = f"locked-{uuid.uuid4().hex[:8]}"
    insert_rows("page_events", [page(site, "2026-11-20 09:00:00", "v1", "/")])
    clickhouse.get_client().command(
        "CREATE TABLE IF NOT EXISTS session_facts_scratch_killed AS session_facts"
    )
    done = threading.Event()

    def refresh() -> None:
        session_facts.refresh()
        done.set()

    # Another process's refresh holds the lock (the lock lives in Redis, shared by all of them).
    with locks.exclusive("session-facts-refresh", hold=60, wait=1):
        waiting = threading.Thread(target=refresh)
        waiting.start()
        assert not done.wait(1.5), "a refresh ran while another one held the lock"
    waiting.join(60)
    assert done.is_set()
    assert scratch_tables() == set()
    pageviews = clickhouse.get_client().command(
        "SELECT sum(pageviews) FROM session_facts WHERE site_id = {site:String}",
        parameters={"site": site},
    )
    assert pageviews == 1


def test_a_lock_held_too_long_is_refused_with_a_reason():
    with override_settings(REDIS_URL=""):
        with locks.exclusive("held", hold=60, wait=0):
            started = time.monotonic()
            with (
                pytest.raises(locks.LockBusy, match="held is still held"),
                locks.exclusive("held", hold=60, wait=0.2),
            ):
                pass
            assert time.monotonic() - started >= 0.2
        with locks.exclusive("held", hold=60, wait=0):
            pass  # released with its holder
