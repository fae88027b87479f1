"""Realtime visitors per site as a Prometheus gauge, for whoever reads a web role's /metrics
from afar (``manage.py top --url``, a Grafana panel).

Kept in a registry of its own (``REALTIME_REGISTRY``) that only the ``/metrics`` view renders,
so the processes without a view (the drain's metrics port, Celery) never query ClickHouse
when scraped. One query for all sites (analytics.reports.traffic.realtime_visitors_by_site),
at most every ``CACHE_SECONDS`` per process however often it is scraped; only sites with
visitors get a series. When ClickHouse does not answer, the gauge is left out (and logged),
never the rest of /metrics.
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
METRIC = "naboria_realtime_visitors"


class RealtimeVisitorsCollector(Collector):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._read_at = -CACHE_SECONDS
        self._visitors: dict[str, int] | None = None

    def _current(self) -> dict[str, int] | None:
        with self._lock:
            if time.monotonic() - self._read_at >= CACHE_SECONDS:
                self._read_at = time.monotonic()
                try:
                    self._visitors = realtime_visitors_by_site()
                except Exception as error:  # scraping must not fail for a report's sake
                    logger.warning("realtime visitors not read: %s", error)
                    self._visitors = None
            return self._visitors

    def forget(self) -> None:
        with self._lock:
            self._read_at = -CACHE_SECONDS

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
