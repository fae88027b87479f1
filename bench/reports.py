"""Report latency benchmark (issue 5/6): generated traffic bulk-loaded for one site into an
embedded ClickHouse (chdb), then every report timed in process.

    .venv/bin/python bench/reports.py                 # --visitors 1000000 (about 10M events)

Prints p50 / p95 of each report over --runs runs (after one warm-up), of a full dashboard
overview load (overview with comparison, the main graph and the five top lists, one after the
other, as an upper bound of what the page waits for), of realtime, and, for the reports that
can answer from a rollup, the rollup and raw times side by side with their ratio.
Targets: each report < 100 ms p95, full overview < 300 ms, realtime < 50 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.test_services import embedded_environment

SITE = "bench-site"
TIMEZONE = "Europe/Paris"


def timed(function: Callable[[], Any], runs: int) -> tuple[float, float]:
    function()  # warm-up: caches, code paths
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    samples.sort()
    return statistics.median(samples) * 1000, samples[
        min(len(samples) - 1, int(0.95 * len(samples)))
    ] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--visitors", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=20)
    options = parser.parse_args()
    os.environ.update(embedded_environment(Path(tempfile.mkdtemp(prefix="naboria-reports-bench-"))))
    os.environ["LOG_LEVEL"] = "WARNING"

    import django

    django.setup()
    from analytics import clickhouse_migrations
    from analytics.reports import ads_and_consent, conversions, traffic
    from analytics.reports.query import ReportQuery
    from analytics.traffic_generator import AdInventory, bulk_load, generate_visits
    from naboria import clickhouse

    clickhouse_migrations.apply_pending()
    started = time.perf_counter()
    visits = generate_visits(
        days=options.days,
        visitors=options.visitors,
        timezone=TIMEZONE,
        inventory=AdInventory(((1, 11, 1), (2, 21, 1), (3, 31, 2))),
    )
    pages, ads = bulk_load(site_id=SITE, retention_days=400, visits=visits, batch_rows=200_000)
    client = clickhouse.get_client()
    client.command("OPTIMIZE TABLE page_events FINAL")
    load_seconds = time.perf_counter() - started
    lines = [
        f"machine: {os.cpu_count()} cores; Python {sys.version.split()[0]}",
        f"data: {pages:,} page events and {ads:,} ad events ({pages + ads:,} in all) for one site, "
        f"{options.visitors:,} visitors over {options.days} days; generated and loaded in {load_seconds:.0f} s",
    ]
    print(*lines, sep="\n", flush=True)

    def query(**params: str) -> ReportQuery:
        return ReportQuery.parse(site_id=SITE, timezone=TIMEZONE, params=params)

    month = query()
    raw = query(hostname="shop.example")  # matches every row, but rollups cannot answer it
    day = query(**{"from": month.period.end.isoformat(), "to": month.period.end.isoformat()})
    reports: list[tuple[str, Callable[[], Any]]] = [
        ("overview (with comparison)", lambda: traffic.overview(query(compare="previous"))),
        ("timeseries by day", lambda: traffic.timeseries(month, interval="day")),
        ("timeseries by hour (one day)", lambda: traffic.timeseries(day, interval="hour")),
        ("top pages", lambda: traffic.breakdown(month, dimension="pages")),
        ("sources", lambda: traffic.breakdown(month, dimension="sources")),
        ("countries", lambda: traffic.breakdown(month, dimension="countries")),
        ("devices", lambda: traffic.breakdown(month, dimension="devices")),
        ("browsers", lambda: traffic.breakdown(month, dimension="browsers")),
        ("entry pages", lambda: traffic.entry_exit_pages(month, which="entry")),
        ("goals", lambda: conversions.custom_events(month)),
        (
            "funnel (5 steps)",
            lambda: conversions.funnel(
                month, steps=["/", "/products", "/cart", "/checkout", "/thanks"]
            ),
        ),
        ("retention (4 weeks)", lambda: conversions.retention(month, weeks=4)),
        ("ad performance", lambda: ads_and_consent.ad_performance(month, by="campaign")),
        ("filtered overview (country)", lambda: traffic.overview(query(country="FR"))),
    ]
    results = []
    for name, run in reports:
        p50, p95 = timed(run, options.runs)
        verdict = "ok" if p95 < 100 else "OVER 100 ms"
        results.append(f"{name:32} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  {verdict}")
        print(results[-1], flush=True)

    def dashboard() -> None:
        traffic.overview(query(compare="previous"))
        traffic.timeseries(month, interval="day")
        for dimension in ("pages", "sources", "countries", "devices", "browsers"):
            traffic.breakdown(month, dimension=dimension, limit=8)

    p50, p95 = timed(dashboard, options.runs)
    results.append(
        f"{'full overview load':32} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  {'ok' if p95 < 300 else 'OVER 300 ms'}"
    )
    print(results[-1], flush=True)
    p50, p95 = timed(lambda: traffic.realtime(site_id=SITE), options.runs)
    results.append(
        f"{'realtime':32} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  {'ok' if p95 < 50 else 'OVER 50 ms'}"
    )
    print(results[-1], flush=True)
    for name, rollup, fallback in [
        ("timeseries by day", lambda: traffic.timeseries(month), lambda: traffic.timeseries(raw)),
        (
            "top pages",
            lambda: traffic.breakdown(month, dimension="pages"),
            lambda: traffic.breakdown(raw, dimension="pages"),
        ),
    ]:
        _, rollup_p95 = timed(rollup, options.runs)
        _, raw_p95 = timed(fallback, options.runs)
        results.append(
            f"rollup vs raw, {name:18} rollup p95 {rollup_p95:6.1f} ms | raw p95 {raw_p95:6.1f} ms | ratio {raw_p95 / rollup_p95:.1f}x"
        )
        print(results[-1], flush=True)
    print("\n".join(["", "summary:", *lines, *results]))


if __name__ == "__main__":
    main()
