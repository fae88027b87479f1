"""Report latency benchmark (issues 5/6 and 17): generated traffic bulk-loaded for one site into
an embedded ClickHouse (chdb), then every report timed in process, without and with filters.

    .venv/bin/python bench/reports.py                 # --visitors 1000000 (about 11M events)
    .venv/bin/python bench/reports.py --data-dir /tmp/rb11m --runs 10 --no-raw

Prints p50 / p95 of each report over --runs runs (after one warm-up) and a verdict against its
target: every report, unfiltered; the overview (with comparison), the daily graph, top pages
and the dashboard request (the overview tab's one request: overview with comparison, graph,
five top lists) under each filter of FILTERS (a page, a source, a goal, a negated country, a
property, two countries OR'ed); the engagement reports (outbound links, downloads, time on page
and scroll depth) and a custom event's property values, unfiltered and under the page filter;
and realtime. Without ``--no-raw``, the unfiltered reports that read visits are also computed
from raw events only, for the ratio. Session facts are refreshed first (timed too).
``--data-dir`` keeps the loaded data for the next run; ``--only`` times the reports whose name
contains one of its words.
Targets: each report < 100 ms p95, the dashboard request < 300 ms, realtime < 50 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.test_services import embedded_environment

SITE = "bench-site"
TIMEZONE = "Europe/Paris"
# name -> filter parameters (docs/analytics.md, Filters), on the generated traffic's values.
FILTERS = {
    "page": {"path": "/pricing"},
    "source": {"source": "Google"},
    "goal": {"goal": "Signup"},
    "not FR": {"country": "!FR"},
    "property": {"property": "plan:pro"},
    "FR or DE": {"country": "FR|DE"},
}
REPORT_TARGET_MS = 100
DASHBOARD_TARGET_MS = 300
REALTIME_TARGET_MS = 50


@dataclass(frozen=True)
class Timed:
    """A report to time: its name, the query, the call, its target, and whether it reads
    visits (so that it has a raw-events variant to compare with)."""

    name: str
    query: Any  # analytics.reports.query.ReportQuery (imported once Django is set up)
    report: Callable[[Any], Any]
    target_ms: int = REPORT_TARGET_MS
    has_raw: bool = False


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


def load_average() -> str:
    """The machine's load average (1, 5, 15 minutes): the timings mean little on a busy one."""
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--visitors", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--no-raw",
        action="store_true",
        help="skip the raw-events variant of each report (a shorter run)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        default=(),
        help="time only the reports whose name contains one of these words",
    )
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
    from analytics.reports import ads_and_consent, conversions, engagement, traffic
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
    lines.append(f"load average before timing: {load_average()}")
    print(*lines[-2:], sep="\n", flush=True)

    def query(**params: str) -> ReportQuery:
        return ReportQuery.parse(site_id=SITE, timezone=TIMEZONE, params=params)

    month = query()
    day = query(**{"from": month.period.end.isoformat(), "to": month.period.end.isoformat()})
    compared = query(compare="previous")
    funnel_steps = ["/", "/products", "/cart", "/checkout", "/thanks"]

    def engagement_reports(suffix: str, report_query: ReportQuery) -> list[Timed]:
        return [
            Timed(
                f"outbound links{suffix}",
                report_query,
                lambda q: engagement.followed_links(q, kind="outbound"),
            ),
            Timed(
                f"downloads{suffix}",
                report_query,
                lambda q: engagement.followed_links(q, kind="download"),
            ),
            Timed(f"engagement{suffix}", report_query, engagement.page_engagement),
            Timed(
                f"event properties{suffix}",
                report_query,
                lambda q: conversions.event_properties(q, event="Signup", key="plan"),
            ),
        ]

    timings = [
        Timed("overview (with comparison)", compared, traffic.overview, has_raw=True),
        Timed(
            "timeseries by day",
            month,
            lambda q: traffic.timeseries(q, interval="day"),
            has_raw=True,
        ),
        Timed(
            "timeseries by hour (one day)",
            day,
            lambda q: traffic.timeseries(q, interval="hour"),
            has_raw=True,
        ),
        *(
            Timed(name, month, partial(traffic.breakdown, dimension=dimension), has_raw=True)
            for name, dimension in (
                ("top pages", "pages"),
                ("sources", "sources"),
                ("countries", "countries"),
                ("devices", "devices"),
                ("browsers", "browsers"),
            )
        ),
        Timed(
            "entry pages",
            month,
            lambda q: traffic.entry_exit_pages(q, which="entry"),
            has_raw=True,
        ),
        Timed("goals", month, conversions.custom_events, has_raw=True),
        Timed(
            "funnel (5 steps)",
            month,
            lambda q: conversions.funnel(q, steps=funnel_steps),
            has_raw=True,
        ),
        Timed(
            "retention (4 weeks)", month, lambda q: conversions.retention(q, weeks=4), has_raw=True
        ),
        Timed(
            "ad performance",
            month,
            lambda q: ads_and_consent.ad_performance(q, by="campaign"),
        ),
        *engagement_reports("", month),
        Timed("dashboard request", compared, traffic.dashboard, target_ms=DASHBOARD_TARGET_MS),
    ]
    for label, params in FILTERS.items():
        suffix = f" [{label}: {' '.join(f'{k}={v}' for k, v in params.items())}]"
        filtered_month = query(**params)
        filtered_compared = query(compare="previous", **params)
        timings += [
            Timed(f"overview (with comparison){suffix}", filtered_compared, traffic.overview),
            Timed(
                f"timeseries by day{suffix}",
                filtered_month,
                lambda q: traffic.timeseries(q, interval="day"),
            ),
            Timed(
                f"top pages{suffix}",
                filtered_month,
                lambda q: traffic.breakdown(q, dimension="pages"),
            ),
            Timed(
                f"dashboard request{suffix}",
                filtered_compared,
                traffic.dashboard,
                target_ms=DASHBOARD_TARGET_MS,
            ),
        ]
        if label == "page":
            timings += engagement_reports(suffix, filtered_month)
    if options.only:
        timings = [t for t in timings if any(word in t.name for word in options.only)]

    results, missed = [], 0
    for timing in timings:
        p50, p95 = timed(timing.report, options.runs, timing.query)
        ok = p95 < timing.target_ms
        missed += not ok
        line = (
            f"{timing.name:62} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  "
            f"{'ok' if ok else f'OVER {timing.target_ms} ms':11}"
        )
        if timing.has_raw and not options.no_raw:
            _, raw_p95 = timed(
                timing.report, max(3, options.runs // 4), replace(timing.query, use_facts=False)
            )
            line += f" | raw p95 {raw_p95:7.1f} ms, ratio {raw_p95 / p95:5.1f}x"
        results.append(line)
        print(line, flush=True)

    if not options.only or any("realtime" in word for word in options.only):
        p50, p95 = timed(lambda: traffic.realtime(site_id=SITE), options.runs)
        ok = p95 < REALTIME_TARGET_MS
        missed += not ok
        results.append(
            f"{'realtime':62} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  "
            f"{'ok' if ok else f'OVER {REALTIME_TARGET_MS} ms'}"
        )
        print(results[-1], flush=True)
    verdict = "every target met" if not missed else f"{missed} of {len(results)} targets NOT met"
    lines.append(f"load average after timing: {load_average()}")
    print("\n".join(["", "summary:", *lines, *results, verdict]))


if __name__ == "__main__":
    main()
