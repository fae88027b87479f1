"""naboria.clickhouse against the embedded engine: threads do not wait for each other's queries."""

from __future__ import annotations

import threading
import time

import pytest

from naboria import clickhouse

pytestmark = [pytest.mark.clickhouse, pytest.mark.usefixtures("clickhouse_schema")]

# About a second on an idle 2-core machine: long enough for many quick queries beside it.
SLOW_QUERY = "SELECT sum(cityHash64(number)) FROM numbers(2000000000)"


def test_a_thread_query_does_not_wait_for_another_threads_query():
    """The drain's consumer looks a batch up while its writer inserts: with one client shared
    by both threads, clickhouse-connect's chdb backend would run them one after the other."""
    slow_seconds: list[float] = []

    def slow() -> None:
        started = time.perf_counter()
        clickhouse.get_client().query(SLOW_QUERY)
        slow_seconds.append(time.perf_counter() - started)

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.05)
    quick: list[float] = []
    while thread.is_alive():
        started = time.perf_counter()
        clickhouse.get_client().command("SELECT 1")
        quick.append(time.perf_counter() - started)
    thread.join()
    # Meaningful only if the slow query outlasted many quick ones.
    assert slow_seconds[0] > 0.2
    assert len(quick) >= 5, (len(quick), slow_seconds)
    assert max(quick) < slow_seconds[0] / 2


def test_reset_gives_every_thread_a_new_client():
    before = clickhouse.get_client()
    assert clickhouse.get_client() is before  # built once per thread
    other: list[object] = []
    thread = threading.Thread(target=lambda: other.append(clickhouse.get_client()))
    thread.start()
    thread.join()
    assert other[0] is not before
    clickhouse.reset()
    assert clickhouse.get_client() is not before
