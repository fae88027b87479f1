"""Report latency benchmark (issue 5/6): generated traffic bulk-loaded for one site into an
embedded ClickHouse (chdb), then every report timed in process.

    .venv/bin/python bench/reports.py                 # --visitors 1000000 (about 10M events)

Prints p50 / p95 of each report over --runs runs (after one warm-up), with the same report
computed from raw events only and the ratio; of a full dashboard overview load (the
``dashboard`` report, the page's one request: overview with comparison, the main graph and the
five top lists); and of realtime. Session facts are refreshed first (timed too).
``--data-dir`` keeps the loaded data for the next run.
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
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.test_services import embedded_environment

SITE = "bench-site"
TIMEZONE = "Europe/Paris"


def timed(function: Callable[..., Any], runs: int, *args: Any) -> tuple[float, float]:
    function(*args)  # warm-up: caches, code paths
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        function(*args)
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
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="keep the loaded data in this folder and reuse it on the next run "
        "(default: a new temporary folder)",
    )
    options = parser.parse_args()
    data_dir = options.data_dir or Path(tempfile.mkdtemp(prefix="naboria-reports-bench-"))
    reuse = (data_dir / "loaded").exists()
    os.environ.update(embedded_environment(data_dir))
    os.environ["LOG_LEVEL"] = "WARNING"

    import django

    django.setup()
    from analytics import clickhouse_migrations, session_facts
    from analytics.reports import ads_and_consent, conversions, traffic
    from analytics.reports.query import ReportQuery
    from analytics.traffic_generator import AdInventory, bulk_load, generate_visits
    from naboria import clickhouse

    clickhouse_migrations.apply_pending()
    client = clickhouse.get_client()
    started = time.perf_counter()
    if not reuse:
        visits = generate_visits(
            days=options.days,
            visitors=options.visitors,
            timezone=TIMEZONE,
            inventory=AdInventory(((1, 11, 1), (2, 21, 1), (3, 31, 2))),
        )
        bulk_load(site_id=SITE, retention_days=400, visits=visits, batch_rows=200_000)
        client.command("OPTIMIZE TABLE page_events FINAL")
        (data_dir / "loaded").touch()
    load_seconds = time.perf_counter() - started
    pages, ads = (
        int(client.command(f"SELECT count() FROM {table} WHERE site_id = '{SITE}'"))  # noqa: S608
        for table in ("page_events", "ad_events")
    )
    lines = [
        f"machine: {os.cpu_count()} cores; Python {sys.version.split()[0]}",
        f"data: {pages:,} page events and {ads:,} ad events ({pages + ads:,} in all) for one site, "
        + (
            f"reused from {data_dir}"
            if reuse
            else f"{options.visitors:,} visitors over {options.days} days; generated and loaded in {load_seconds:.0f} s"
        ),
    ]
    print(*lines, sep="\n", flush=True)

    started = time.perf_counter()
    days = session_facts.refresh(full=True)
    lines.append(f"session facts: {days} days rebuilt in {time.perf_counter() - started:.1f} s")
    print(lines[-1], flush=True)

    def query(**params: str) -> ReportQuery:
        return ReportQuery.parse(site_id=SITE, timezone=TIMEZONE, params=params)

    def raw(report_query: ReportQuery) -> ReportQuery:
        return replace(report_query, use_facts=False)

    month = query()
    day = query(**{"from": month.period.end.isoformat(), "to": month.period.end.isoformat()})
    compared = query(compare="previous")
    france = query(country="FR")
    funnel_steps = ["/", "/products", "/cart", "/checkout", "/thanks"]
    # name -> the report for a query (run on rollups, then on raw events for the ratio)
    reports: list[tuple[str, ReportQuery, Callable[[ReportQuery], Any]]] = [
        ("overview (with comparison)", compared, traffic.overview),
        ("timeseries by day", month, lambda q: traffic.timeseries(q, interval="day")),
        ("timeseries by hour (one day)", day, lambda q: traffic.timeseries(q, interval="hour")),
        ("top pages", month, lambda q: traffic.breakdown(q, dimension="pages")),
        ("sources", month, lambda q: traffic.breakdown(q, dimension="sources")),
        ("countries", month, lambda q: traffic.breakdown(q, dimension="countries")),
        ("devices", month, lambda q: traffic.breakdown(q, dimension="devices")),
        ("browsers", month, lambda q: traffic.breakdown(q, dimension="browsers")),
        ("entry pages", month, lambda q: traffic.entry_exit_pages(q, which="entry")),
        ("goals", month, conversions.custom_events),
        ("funnel (5 steps)", month, lambda q: conversions.funnel(q, steps=funnel_steps)),
        ("retention (4 weeks)", month, lambda q: conversions.retention(q, weeks=4)),
        ("ad performance", month, lambda q: ads_and_consent.ad_performance(q, by="campaign")),
        ("filtered overview (country)", france, traffic.overview),
    ]
    results = []
    for name, report_query, report in reports:
        p50, p95 = timed(report, options.runs, report_query)
        _, raw_p95 = timed(report, max(3, options.runs // 4), raw(report_query))
        verdict = "ok" if p95 < 100 else "OVER 100 ms"
        results.append(
            f"{name:30} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  {verdict:11} "
            f"| raw p95 {raw_p95:7.1f} ms, ratio {raw_p95 / p95:5.1f}x"
        )
        print(results[-1], flush=True)

    # The overview tab's one request: overview with comparison, graph, five top lists.
    p50, p95 = timed(traffic.dashboard, options.runs, compared)
    results.append(
        f"{'full overview load':30} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  {'ok' if p95 < 300 else 'OVER 300 ms'}"
    )
    print(results[-1], flush=True)
    p50, p95 = timed(lambda: traffic.realtime(site_id=SITE), options.runs)
    results.append(
        f"{'realtime':30} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  {'ok' if p95 < 50 else 'OVER 50 ms'}"
    )
    print(results[-1], flush=True)
    print("\n".join(["", "summary:", *lines, *results]))


if __name__ == "__main__":
    main()
