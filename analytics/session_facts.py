"""Session facts: one row per visit, rebuilt from raw page events by a periodic refresh, so that
session reports (overview, session-level breakdowns, entry and exit pages, funnels, retention)
scan plain columns instead of grouping millions of raw events by session on each request.

Entry points:
    refresh()            rebuilds the day partitions of ``session_facts`` whose visits received
                         rows since the previous refresh, and logs the refresh (periodic job
                         ``analytics.tasks.refresh_session_facts``; ``generate_traffic --bulk``)
    rows_sql(...)        the SQL of one visit per row for a site and a UTC range, from the facts
                         plus, live, the visits of visitors that received rows since the last
                         refresh (used by analytics.reports)
    raw_rows_sql(...)    the same rows computed from raw events only (tests and benchmarks
                         compare the two)
    visits_sql(events)   visits, as facts rows, of a selection of page events: the visit rule
                         of events.visits, aggregated; shared by the refresh and the reports

Freshness: a visitor with a row inserted after the last refresh has their visits computed from
raw events at query time (and left out of the facts), so reports are always current, late and
out-of-order events included; the refresh only decides how much of that work is done ahead of
time. Without any refresh (an embedded installation that never ran it) every visit is live.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from events.visits import (
    IS_ACTIVITY,
    VISIT_ID,
    VISIT_SPAN,
    numbered_events_sql,
)
from ingest.referrers import DIRECT_SOURCE
from naboria import clickhouse, locks

logger = logging.getLogger(__name__)

# Per visit, what the event-level filters and the engagement reports read (each a sumMap:
# keys, then how many / how much of each; ClickHouse computes an aggregate written twice once).
# The (event, key, value) properties of its custom events, and how many events sent each:
_PROPERTIES = """(sumMapIf(
        arrayMap(key -> (event_name, key, properties[key]), mapKeys(properties)),
        arrayMap(key -> toUInt32(1), mapKeys(properties)),
        event_type = 'event'
    ))"""
# Per page: its pageviews, then its engagement reports (visible time, how many, their scroll
# depths summed). One map, so that the engagement arrays line up with ``pages`` entry by entry
# (the engagement report reads them in one pass, without joining by page); a page the visit
# reported engagement for but did not view is left out, as it has no pageview to belong to.
_PAGES = """(sumMapIf(
        [pathname],
        [toUInt32(event_type = 'pageview')],
        [toUInt64(if(event_type = 'engagement', visible_ms, 0))],
        [toUInt32(event_type = 'engagement')],
        [toUInt64(if(event_type = 'engagement', scroll_depth, 0))],
        event_type IN ('pageview', 'engagement')
    ))"""


def _viewed(values: str) -> str:
    """The entries of ``values`` (an array of _PAGES) for the pages the visit viewed."""
    return f"arrayFilter((value, views) -> views > 0, {values}, {_PAGES}.2)"


def _clicks(kind: str) -> str:
    """The targets of the visit's ``kind`` events (outbound, download) and their clicks."""
    return f"(sumMapIf([target], [toUInt32(1)], event_type = '{kind}'))"


# Aggregates over one visit's numbered events (events.visits.numbered_events_sql, grouped by
# site, visitor and visit number): the columns of session_facts, in their order. Where the visit
# came from (source, UTM, hostname, entry page) is its first pageview's (no source at all, as
# rows written straight to ClickHouse may have: DIRECT_SOURCE); what it ran on, its first
# event's. A column added later goes last, as its migration appends it to the table.
SESSION_COLUMNS = f"""
    site_id,
    {VISIT_ID} AS session_id,
    sipHash64(visitor_id) AS visitor_hash,
    max(is_bot) AS is_bot,
    min(timestamp) AS started_at,
    maxIf(timestamp, {IS_ACTIVITY}) AS ended_at,
    toUInt32(countIf(event_type = 'pageview')) AS pageviews,
    toUInt32(countIf(event_type = 'event')) AS custom_events,
    toUInt8(pageviews = 1 AND countIf(event_type IN ('event', 'outbound', 'download')) = 0)
        AS is_bounce,
    argMinIf(pathname, timestamp, event_type = 'pageview') AS entry_page,
    argMaxIf(pathname, timestamp, event_type = 'pageview') AS exit_page,
    argMinIf(hostname, timestamp, event_type = 'pageview') AS hostname,
    if(
        empty(argMinIf(referrer_source, timestamp, event_type = 'pageview')),
        '{DIRECT_SOURCE}',
        argMinIf(referrer_source, timestamp, event_type = 'pageview')
    ) AS referrer_source,
    argMinIf(referrer_medium, timestamp, event_type = 'pageview') AS referrer_medium,
    argMinIf(utm_source, timestamp, event_type = 'pageview') AS utm_source,
    argMinIf(utm_medium, timestamp, event_type = 'pageview') AS utm_medium,
    argMinIf(utm_campaign, timestamp, event_type = 'pageview') AS utm_campaign,
    argMinIf(utm_term, timestamp, event_type = 'pageview') AS utm_term,
    argMinIf(utm_content, timestamp, event_type = 'pageview') AS utm_content,
    argMin(country, timestamp) AS country,
    argMin(region, timestamp) AS region,
    argMin(device_type, timestamp) AS device_type,
    argMin(browser, timestamp) AS browser,
    argMin(os, timestamp) AS os,
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
        1, {{max_steps:UInt16}}
    ) AS steps,
    {_viewed(f"{_PAGES}.1")} AS pages,
    {_viewed(f"{_PAGES}.2")} AS page_views,
    (sumMapIf([event_name], [toUInt32(1)], event_type = 'event')).1 AS goals,
    (sumMapIf([event_name], [toUInt32(1)], event_type = 'event')).2 AS goal_events,
    max(retention_days) AS retention_days,
    groupUniqArrayIf(hostname, event_type = 'pageview') AS hostnames,
    {_PROPERTIES}.1 AS custom_properties,
    {_PROPERTIES}.2 AS custom_property_events,
    {_clicks("outbound")}.1 AS outbound_targets,
    {_clicks("outbound")}.2 AS outbound_clicks,
    {_clicks("download")}.1 AS download_targets,
    {_clicks("download")}.2 AS download_clicks,
    argMin(city, timestamp) AS city,
    {_viewed(f"{_PAGES}.3")} AS page_engaged_ms,
    {_viewed(f"{_PAGES}.4")} AS page_engagement_reports,
    {_viewed(f"{_PAGES}.5")} AS page_scroll_depths
"""


def visits_sql(events: str) -> str:
    """One row per visit, with the columns of session_facts, of the page events that the
    query ``events`` selects (all of each visitor's events around the wanted range)."""
    return f"""
        SELECT {SESSION_COLUMNS} FROM ({numbered_events_sql(events)})
        WHERE visit_number > 0
        GROUP BY site_id, visitor_id, visit_number
        HAVING pageviews > 0
    """  # noqa: S608 (events is SQL made by callers; values are parameters)


# SESSION_COLUMNS names its results after the columns they aggregate (country, is_bot...):
# conditions next to them must mean the event columns, not the aggregates.
QUERY_SETTINGS = {"prefer_column_name_to_alias": 1}
# Funnels look at a visit's first MAX_STEPS pageviews and custom events.
MAX_STEPS = 64
# Reports over more visits than this read a sample of visitors (as Plausible and Google
# Analytics do on large sites): distinct counts over millions of visitors cost 50 ms a query.
SAMPLE_ABOVE = 250_000
_LAST_REFRESH = "(SELECT max(inserted_before) FROM session_facts_refreshes)"
# How long a refresh may keep the others waiting (and a killed one keeps them out).
REFRESH_HOLD = 15 * 60


def refresh(*, full: bool = False) -> int:
    """Rebuild the day partitions (by visit start, UTC) that changed since the last refresh, or
    every day with events when ``full``; returns how many days were rebuilt.

    Each day is computed into a scratch table and swapped in whole (REPLACE PARTITION), so a
    refresh that dies halfway leaves consistent days and the next one simply repeats it.
    Refreshes run one at a time (the periodic job and a one-off one, say): two at once could
    swap in a day computed before the other's snapshot yet log the later snapshot as covered.
    """
    with locks.exclusive("session-facts-refresh", hold=REFRESH_HOLD, wait=REFRESH_HOLD):
        return _refresh(full=full)


def _refresh(*, full: bool) -> int:
    client = clickhouse.get_client()
    # Under the lock no other refresh runs: a scratch table left now is one a killed refresh left.
    for (orphan,) in client.query(
        "SELECT name FROM system.tables"
        " WHERE database = currentDatabase() AND startsWith(name, 'session_facts_scratch_')"
    ).result_rows:
        client.command(f"DROP TABLE IF EXISTS {orphan}")
    marked = client.query(f"SELECT now(), {_LAST_REFRESH}").result_rows[0]
    inserted_before: datetime = marked[0]
    since = datetime(1970, 1, 1) if full else marked[1]
    changed = client.query(
        "SELECT DISTINCT toDate(timestamp) FROM page_events "
        "WHERE inserted_at >= {since:DateTime('UTC')}",
        parameters={"since": since},
    ).result_rows
    # A row on one day can move the start of a visit of the day before (it extends it) or take
    # in a visit of the day after (it closes the gap before it), so those days change too.
    days = sorted({day + timedelta(days=shift) for (day,) in changed for shift in (-1, 0, 1)})
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
    events = """
        SELECT * FROM page_events
        WHERE timestamp >= {from:DateTime('UTC')} AND timestamp < {to:DateTime('UTC')}
    """
    client.command(
        f"""
        INSERT INTO {scratch}
        SELECT * FROM ({visits_sql(events)}) WHERE toDate(started_at) = {{day:Date}}
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


# The events that visits which started in [{start}, {end}) can hold lie within VISIT_SPAN of it.
AROUND_RANGE = (
    f"timestamp >= {{start:DateTime64(3, 'UTC')}} - INTERVAL {VISIT_SPAN.days} DAY "
    f"AND timestamp < {{end:DateTime64(3, 'UTC')}} + INTERVAL {VISIT_SPAN.days} DAY"
)
_IN_RANGE = "started_at >= {start:DateTime64(3, 'UTC')} AND started_at < {end:DateTime64(3, 'UTC')}"


def rows_sql(
    *, filters_sql: str, site_id: str, start: datetime, end: datetime, sampling: bool
) -> tuple[str, int]:
    """One visit per row, with the columns of session_facts, for visits of site ``{site}``
    that started in [``{start}``, ``{end}``) and pass ``filters_sql`` (conditions on those
    columns, bots included), and how many visitors in a thousand it keeps (``sampling``: see
    sample_per_mille). Parameters: site, start, end, max_steps and those of ``filters_sql``.

    Visitors with rows inserted since the last refresh ("touched") have their visits computed
    from their raw events, and their facts are left out: a late row can join, split or merge
    their visits. One cheap look first (the ``inserted_at`` skip index) keeps the query simple
    when there are none, as right after a refresh."""
    touched_visitors = f"""
        SELECT DISTINCT visitor_id FROM page_events
        WHERE site_id = {{site:String}} AND inserted_at >= {_LAST_REFRESH} AND {AROUND_RANGE}
    """  # noqa: S608
    sample = _sample_for(site_id=site_id, start=start, end=end) if sampling else 1000
    if sample < 1000:
        # A range of hashes is a random share of visitors that the facts' order can skip to.
        filters_sql = f"{filters_sql} AND visitor_hash < {sample * (2**64 // 1000)}"
    facts = f"""
        SELECT * FROM session_facts
        WHERE site_id = {{site:String}} AND {_IN_RANGE} AND {filters_sql}
    """  # noqa: S608
    touched = clickhouse.get_client().command(
        f"SELECT count() FROM ({touched_visitors})",  # noqa: S608
        parameters={"site": site_id, "start": start, "end": end},
    )
    if not int(touched):
        return facts, sample
    sql = f"""
        {facts} AND visitor_hash NOT IN (SELECT sipHash64(visitor_id) FROM ({touched_visitors}))
        UNION ALL
        {_live_visits_sql(f"AND visitor_id IN ({touched_visitors})", filters_sql)}
    """  # noqa: S608
    return sql, sample


def raw_rows_sql(*, filters_sql: str) -> str:
    """As rows_sql, with every visit computed from the raw events (no facts, no sampling)."""
    return _live_visits_sql("", filters_sql)


def _live_visits_sql(visitors_sql: str, filters_sql: str) -> str:
    events = f"""
        SELECT * FROM page_events
        WHERE site_id = {{site:String}} AND {AROUND_RANGE} {visitors_sql}
    """  # noqa: S608
    return f"SELECT * FROM ({visits_sql(events)}) WHERE {_IN_RANGE} AND {filters_sql}"  # noqa: S608


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
