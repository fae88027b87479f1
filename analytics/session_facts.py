"""Session facts: one row per visit, rebuilt from raw page events by a periodic refresh, so that
session reports (overview, session-level breakdowns, entry and exit pages, funnels, retention)
scan plain columns instead of grouping millions of raw events by session on each request.

Entry points:
    refresh()            rebuilds the day partitions of ``session_facts`` whose visits received
                         rows since the previous refresh, and logs the refresh (periodic job
                         ``analytics.tasks.refresh_session_facts``; ``generate_traffic --bulk``)
    rows_sql(...)        the SQL of one visit per row for a site and a UTC range, from the facts
                         plus, live, the visits that received rows since the last refresh
                         (used by analytics.reports)
    SESSION_COLUMNS      the aggregate expressions that turn a session's page events into its
                         facts, shared by the refresh and by reports that must read raw events

Freshness: a visit with a row inserted after the last refresh is computed from raw events at
query time (and left out of the facts), so reports are always current, late events included;
the refresh only decides how much of that work is done ahead of time. Without any refresh
(an embedded installation that never ran it) every visit is computed live.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from naboria import clickhouse

logger = logging.getLogger(__name__)

# Expressions over page_events grouped by (site_id, session_id): the columns of session_facts.
SESSION_COLUMNS = """
    site_id,
    session_id,
    sipHash64(any(visitor_id)) AS visitor_hash,
    max(is_bot) AS is_bot,
    min(timestamp) AS started_at,
    max(timestamp) AS ended_at,
    toUInt32(countIf(event_type = 'pageview')) AS pageviews,
    toUInt32(countIf(event_type = 'event')) AS custom_events,
    toUInt8(pageviews = 1 AND custom_events = 0) AS is_bounce,
    argMinIf(pathname, timestamp, event_type = 'pageview') AS entry_page,
    argMaxIf(pathname, timestamp, event_type = 'pageview') AS exit_page,
    argMin(hostname, timestamp) AS hostname,
    argMin(referrer_source, timestamp) AS referrer_source,
    argMin(referrer_medium, timestamp) AS referrer_medium,
    argMin(utm_source, timestamp) AS utm_source,
    argMin(utm_medium, timestamp) AS utm_medium,
    argMin(utm_campaign, timestamp) AS utm_campaign,
    any(country) AS country,
    any(region) AS region,
    any(device_type) AS device_type,
    any(browser) AS browser,
    any(os) AS os,
    arraySlice(
        arrayMap(
            step -> step.2,
            arraySort(
                step -> step.1,
                groupArrayIf(
                    (timestamp, if(event_type = 'event', concat('event:', event_name), pathname)),
                    event_type IN ('pageview', 'event')
                )
            )
        ),
        1, {max_steps:UInt16}
    ) AS steps,
    (sumMapIf([pathname], [toUInt32(1)], event_type = 'pageview')).1 AS pages,
    (sumMapIf([pathname], [toUInt32(1)], event_type = 'pageview')).2 AS page_views,
    max(retention_days) AS retention_days
"""
# SESSION_COLUMNS names its results after the columns they aggregate (country, is_bot...):
# conditions next to them must mean the event columns, not the aggregates.
QUERY_SETTINGS = {"prefer_column_name_to_alias": 1}
# Funnels look at a visit's first MAX_STEPS pageviews and custom events.
MAX_STEPS = 64
# Rows of a visit lie within this distance of its start (visits longer than a day are split
# by the analysis, not by ingestion: vanishingly rare and bounded by it).
VISIT_SPAN = timedelta(days=1)
# Reports over more visits than this read a sample of visitors (as Plausible and Google
# Analytics do on large sites): distinct counts over millions of visitors cost 50 ms a query.
SAMPLE_ABOVE = 250_000
_LAST_REFRESH = "(SELECT max(inserted_before) FROM session_facts_refreshes)"


def refresh(*, full: bool = False) -> int:
    """Rebuild the day partitions (by visit start, UTC) that changed since the last refresh, or
    every day with events when ``full``; returns how many days were rebuilt.

    Each day is computed into a scratch table and swapped in whole (REPLACE PARTITION), so a
    refresh that dies halfway leaves consistent days and the next one simply repeats it.
    """
    client = clickhouse.get_client()
    marked = client.query(f"SELECT now(), {_LAST_REFRESH}").result_rows[0]
    inserted_before: datetime = marked[0]
    since = datetime(1970, 1, 1) if full else marked[1]
    changed = client.query(
        "SELECT DISTINCT toDate(timestamp) FROM page_events "
        "WHERE inserted_at >= {since:DateTime('UTC')}",
        parameters={"since": since},
    ).result_rows
    # A visit's rows can reach into the next day, so a changed day may change the day before.
    days = sorted({day for (day,) in changed} | {day - timedelta(days=1) for (day,) in changed})
    scratch = f"session_facts_scratch_{inserted_before:%Y%m%d%H%M%S}"
    client.command(f"CREATE TABLE IF NOT EXISTS {scratch} AS session_facts")
    try:
        for day in days:
            _rebuild_day(client, scratch=scratch, day=day)
    finally:
        client.command(f"DROP TABLE IF EXISTS {scratch}")
    client.insert(
        "session_facts_refreshes",
        [[datetime.now(UTC), inserted_before, len(days)]],
        column_names=["refreshed_at", "inserted_before", "days_rebuilt"],
    )
    logger.info("session facts: %d days rebuilt", len(days))
    return len(days)


def _rebuild_day(client: Any, *, scratch: str, day: date) -> None:
    start = datetime.combine(day, datetime.min.time())
    client.command(f"TRUNCATE TABLE {scratch}")
    client.command(
        f"""
        INSERT INTO {scratch}
        SELECT * FROM (
            SELECT {SESSION_COLUMNS} FROM page_events
            WHERE timestamp >= {{from:DateTime('UTC')}} AND timestamp < {{to:DateTime('UTC')}}
            GROUP BY site_id, session_id
        )
        WHERE toDate(started_at) = {{day:Date}}
        """,  # noqa: S608 (the scratch name is made here; values are parameters)
        parameters={
            "from": start - VISIT_SPAN,
            "to": start + timedelta(days=1) + VISIT_SPAN,
            "day": day,
            "max_steps": MAX_STEPS,
        },
        settings=QUERY_SETTINGS,
    )
    # A partition is named by its value; the day is a date, formatted by Python.
    # (A day may have no visits left, e.g. only the day before a changed day had any.)
    client.command(
        f"ALTER TABLE session_facts REPLACE PARTITION '{day.isoformat()}' FROM {scratch}",
        settings={"allow_replace_partition_from_empty_source": 1},
    )


def sample_per_mille(*, visits: int) -> int:
    """How many visitors in a thousand a report reads: all of them up to SAMPLE_ABOVE visits,
    then a share that keeps about that many (visitors are kept or left out whole, so every
    ratio stays unbiased and counts are scaled back)."""
    if visits <= SAMPLE_ABOVE:
        return 1000
    return max(1, min(1000, SAMPLE_ABOVE * 1000 // visits))


def rows_sql(
    *, filters_sql: str, site_id: str, start: datetime, end: datetime, sampling: bool
) -> tuple[str, dict[str, Any], int]:
    """One visit per row, with the columns of session_facts, for visits of site ``{site}``
    that started in [``{start}``, ``{end}``) and pass ``filters_sql`` (conditions on those
    columns, bots included), the parameters it adds to site, start, end and max_steps, and
    how many visitors in a thousand it keeps (``sampling``: see sample_per_mille).

    Visits with rows inserted since the last refresh ("touched") are computed from their raw
    events and left out of the facts. One cheap look first (the ``inserted_at`` skip index)
    keeps the query simple when there are none, as right after a refresh."""
    # The rows of visits that started in the range lie within VISIT_SPAN of it.
    around_range = (
        f"timestamp >= {{start:DateTime64(3, 'UTC')}} - INTERVAL {VISIT_SPAN.days} DAY "
        f"AND timestamp < {{end:DateTime64(3, 'UTC')}} + INTERVAL {VISIT_SPAN.days} DAY"
    )
    touched_rows = f"""
        FROM page_events
        WHERE site_id = {{site:String}} AND inserted_at >= {_LAST_REFRESH} AND {around_range}
    """
    in_range = (
        "started_at >= {start:DateTime64(3, 'UTC')} AND started_at < {end:DateTime64(3, 'UTC')}"
    )
    sample = _sample_for(site_id=site_id, start=start, end=end) if sampling else 1000
    if sample < 1000:
        # A range of hashes is a random share of visitors that the facts' order can skip to.
        filters_sql = f"{filters_sql} AND visitor_hash < {sample * (2**64 // 1000)}"
    facts = f"""
        SELECT * FROM session_facts
        WHERE site_id = {{site:String}} AND {in_range} AND {filters_sql}
    """  # noqa: S608
    touched, touched_from = (
        clickhouse.get_client()
        .query(
            f"SELECT count(), min(timestamp) {touched_rows}",
            parameters={"site": site_id, "start": start, "end": end},
        )
        .result_rows[0]
    )
    if not touched:
        return facts, {}, sample
    sql = f"""
        {facts}
          -- Only visits active around the earliest touched row can have changed.
          AND (ended_at < {{touched_from:DateTime64(3, 'UTC')}} - INTERVAL 1 HOUR
               OR session_id NOT IN (SELECT session_id {touched_rows}))
        UNION ALL
        SELECT * FROM (
            SELECT {SESSION_COLUMNS} FROM page_events
            WHERE site_id = {{site:String}} AND {around_range}
              AND session_id IN (SELECT session_id {touched_rows})
            GROUP BY site_id, session_id
        )
        WHERE {in_range} AND {filters_sql}
    """  # noqa: S608
    return sql, {"touched_from": touched_from}, sample


_visit_counts: dict[tuple[str, datetime, datetime], tuple[float, int]] = {}


def _sample_for(*, site_id: str, start: datetime, end: datetime) -> int:
    """The sample for a site's period, from its visit count (kept a minute: the share of
    visitors a report reads need not follow every new visit)."""
    key = (site_id, start, end)
    now = time.monotonic()
    cached = _visit_counts.get(key)
    if cached is None or cached[0] < now:
        visits = clickhouse.get_client().command(
            "SELECT count() FROM session_facts WHERE site_id = {site:String} "
            "AND started_at >= {start:DateTime64(3, 'UTC')} "
            "AND started_at < {end:DateTime64(3, 'UTC')}",
            parameters={"site": site_id, "start": start, "end": end},
        )
        if len(_visit_counts) > 10_000:
            _visit_counts.clear()
        cached = _visit_counts[key] = (now + 60, int(visits))
    return sample_per_mille(visits=cached[1])
