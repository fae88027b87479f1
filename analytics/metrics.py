"""Realtime visitors per site as a Prometheus gauge, for whoever reads a web role's /metrics
from afar (``manage.py top --url``, a Grafana panel).

Kept in a registry of its own (``REALTIME_REGISTRY``) that only the ``/metrics`` view renders,
so the processes without a view (the drain's metrics port, Celery) never query ClickHouse
when scraped. One query for all sites (analytics.reports.traffic.realtime_visitors_by_site),
at most every ``CACHE_SECONDS`` per process however often it is scraped, and a scrape waits for
it at most ``WAIT_SECONDS``; only sites with visitors get a series. When ClickHouse does not
answer, the gauge is left out (and logged), never the rest of /metrics.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from analytics.reports.traffic import REALTIME_MINUTES, realtime_visitors_by_site

logger = logging.getLogger(__name__)

CACHE_SECONDS = 5.0
WAIT_SECONDS = 2.0
METRIC = "naboria_realtime_visitors"


class RealtimeVisitorsCollector(Collector):
    """Reads the visitors in a thread of its own, so a slow or unreachable ClickHouse costs a
    scrape at most ``WAIT_SECONDS`` (then the last numbers read, or none), never the scrape's
    own timeout: /metrics is what an operator reads when ClickHouse is in trouble."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._read_at = -CACHE_SECONDS
        self._visitors: dict[str, int] | None = None
        self._reading: threading.Event | None = None  # set once the read under way is done
        self._generation = 0  # a read started before forget() keeps nothing

    def _read(self, done: threading.Event, generation: int) -> None:
        try:
            visitors: dict[str, int] | None = realtime_visitors_by_site()
        except Exception as error:  # scraping must not fail for a report's sake
            logger.warning("realtime visitors not read: %s", error)
            visitors = None
        with self._lock:
            if generation == self._generation:
                self._visitors, self._read_at, self._reading = visitors, time.monotonic(), None
        done.set()

    def _current(self) -> dict[str, int] | None:
        with self._lock:
            reading = self._reading
            if reading is None and time.monotonic() - self._read_at >= CACHE_SECONDS:
                reading = self._reading = threading.Event()
                threading.Thread(
                    target=self._read,
                    args=(reading, self._generation),
                    name="realtime-visitors",
                    daemon=True,
                ).start()
        if reading is not None:
            reading.wait(WAIT_SECONDS)
        with self._lock:
            return self._visitors

    def forget(self) -> None:
        """Start afresh: no numbers, read anew at the next scrape (tests)."""
        with self._lock:
            self._generation += 1
            self._read_at, self._visitors, self._reading = -CACHE_SECONDS, None, None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        visitors = self._current()
        if visitors is None:
            return
        family = GaugeMetricFamily(
            METRIC,
            f"Visitors with an event in the last {REALTIME_MINUTES} minutes (bots left out), "
            "by site public id: the realtime report's number.",
            labels=["site"],
        )
        for site, count in sorted(visitors.items()):
            family.add_metric([site], count)
        yield family


REALTIME_VISITORS = RealtimeVisitorsCollector()
REALTIME_REGISTRY = CollectorRegistry(auto_describe=False)
REALTIME_REGISTRY.register(REALTIME_VISITORS)
