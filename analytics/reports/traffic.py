"""Traffic reports: overview, timeseries, breakdowns (pages, entry and exit pages, sources,
UTM, countries, regions, devices, browsers, operating systems) and realtime.

Definitions (the dashboards and docs/analytics.md use the same words):
- a **visit** is a session (30 minutes without activity ends it) with at least one event in
  the range and the filters; **visitors** are distinct visitor ids;
- **bounce**: a visit with a single pageview and no custom event;
- **visit duration**: from its first to its last event (engagement reports extend it).

Distinct counts use ClickHouse's ``uniq`` (exact for small sets, within about 1 % beyond),
as the rollups' ``uniqState`` does, so raw and rollup answers agree.

Reports answer from the hourly rollups when the filters and the site's timezone allow it
(``pageviews_hourly`` for pages and timeseries; whole-hour timezone offsets only) and from the
raw events otherwise; both give the same numbers (tests compare them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from analytics.reports.query import (
    Conditions,
    InvalidReportQuery,
    ReportQuery,
    bucket_expression,
    bucket_labels,
    event_conditions,
    hourly_rollup_conditions,
    rows,
)

BREAKDOWNS = {
    # name -> (expression over page_events, only pageviews count)
    "pages": ("pathname", True),
    "hostnames": ("hostname", True),
    "sources": ("referrer_source", False),
    "mediums": ("referrer_medium", False),
    "utm_sources": ("utm_source", False),
    "utm_mediums": ("utm_medium", False),
    "utm_campaigns": ("utm_campaign", False),
    "countries": ("country", False),
    "regions": ("region", False),
    "devices": ("device_type", False),
    "browsers": ("browser", False),
    "operating_systems": ("os", False),
}
SESSION_SUMMARY = """
    SELECT
        session_id,
        any(visitor_id) AS visitor,
        countIf(event_type = 'pageview') AS pageviews,
        countIf(event_type = 'event') AS custom_events,
        toUnixTimestamp64Milli(max(timestamp))
            - toUnixTimestamp64Milli(min(timestamp)) AS duration_ms,
        argMinIf(pathname, timestamp, event_type = 'pageview') AS entry_page,
        argMaxIf(pathname, timestamp, event_type = 'pageview') AS exit_page
    FROM page_events
    WHERE {conditions}
    GROUP BY session_id
"""


@dataclass(frozen=True)
class Overview:
    visitors: int
    visits: int
    pageviews: int
    views_per_visit: float
    bounce_rate: float  # percent of visits
    visit_duration_seconds: float  # average

    def as_dict(self) -> dict[str, Any]:
        return {
            "visitors": self.visitors,
            "visits": self.visits,
            "pageviews": self.pageviews,
            "views_per_visit": self.views_per_visit,
            "bounce_rate": self.bounce_rate,
            "visit_duration_seconds": self.visit_duration_seconds,
        }


def overview(query: ReportQuery) -> dict[str, Any]:
    """The overview of the period, and of the comparison period with the change in percent."""
    current = _overview(query)
    answer: dict[str, Any] = {"period": current.as_dict()}
    if query.compare is not None:
        previous = _overview(query.for_period(query.compare))
        answer["compare"] = previous.as_dict()
        answer["change"] = {
            name: _change(value, previous.as_dict()[name])
            for name, value in current.as_dict().items()
        }
    return answer


def _change(now: float, before: float) -> float | None:
    return None if not before else round((now - before) / before * 100, 1)


def _overview(query: ReportQuery) -> Overview:
    conditions = event_conditions(query)
    sql = f"""
        SELECT
            uniq(visitor),
            count(),
            sum(pageviews),
            countIf(pageviews = 1 AND custom_events = 0),
            avg(duration_ms)
        FROM ({SESSION_SUMMARY.format(conditions=conditions.sql)})
    """  # noqa: S608 (conditions hold only placeholders; values are parameters)
    visitors, visits, pageviews, bounces, duration_ms = rows(sql, conditions.parameters)[0]
    return Overview(
        visitors=int(visitors),
        visits=int(visits),
        pageviews=int(pageviews or 0),
        views_per_visit=round(pageviews / visits, 2) if visits else 0.0,
        bounce_rate=round(bounces / visits * 100, 1) if visits else 0.0,
        visit_duration_seconds=round((duration_ms or 0) / 1000, 1) if visits else 0.0,
    )


def _rollup_allowed(query: ReportQuery) -> bool:
    """The hourly rollup answers unfiltered (or page-filtered) questions of sites whose offset
    from UTC is whole hours during the period (half-hour zones need raw events)."""
    if not query.uses_only({"path"}):
        return False
    zone = query.period.zone
    moment = query.period.start_utc
    while moment <= query.period.end_utc:
        offset = zone.utcoffset(moment.replace(tzinfo=None))
        if offset is None or offset.total_seconds() % 3600:
            return False
        moment += timedelta(days=7)
    return True


def timeseries(query: ReportQuery, *, interval: str = "day") -> dict[str, Any]:
    """Visitors, visits and pageviews per hour, day, week or month (site time), without holes."""
    bucket = bucket_expression(interval)
    labels = bucket_labels(query.period, interval)
    if len(labels) > 2000:
        raise InvalidReportQuery("interval: too many points for this range; use a longer one")
    if _rollup_allowed(query):
        conditions = _rollup_conditions(query)
        sql = f"""
            SELECT {bucket.replace("timestamp", "hour")} AS bucket,
                   uniqMerge(visitors), uniqMerge(visits), sum(pageviews)
            FROM pageviews_hourly WHERE {conditions.sql}
            GROUP BY bucket
        """  # noqa: S608
        source = "rollup"
    else:
        conditions = event_conditions(query)
        sql = f"""
            SELECT {bucket} AS bucket, uniq(visitor_id), uniq(session_id),
                   countIf(event_type = 'pageview')
            FROM page_events WHERE {conditions.sql}
            GROUP BY bucket
        """  # noqa: S608
        source = "raw"
    found = {
        label: (int(visitors), int(visits), int(pageviews))
        for label, visitors, visits, pageviews in rows(
            sql, {**conditions.parameters, "tz": query.period.timezone}
        )
    }
    return {
        "interval": interval,
        "source": source,
        "points": [
            dict(
                zip(
                    ("date", "visitors", "visits", "pageviews"),
                    (label, *found.get(label, (0, 0, 0))),
                    strict=True,
                )
            )
            for label in labels
        ],
    }


def _rollup_conditions(query: ReportQuery) -> Conditions:
    conditions = hourly_rollup_conditions(query)
    if "path" in query.filters:
        conditions.add("pathname = {path:String}", path=query.filters["path"])
    return conditions


def breakdown(
    query: ReportQuery, *, dimension: str, limit: int = 10, offset: int = 0
) -> dict[str, Any]:
    """Top values of a dimension with visitors, visits and pageviews, most visitors first."""
    if dimension not in BREAKDOWNS:
        raise InvalidReportQuery(f"dimension: one of {', '.join(sorted(BREAKDOWNS))}")
    column, pageviews_only = BREAKDOWNS[dimension]
    if dimension == "pages" and _rollup_allowed(query):
        conditions = _rollup_conditions(query)
        sql = f"""
            SELECT pathname, uniqMerge(visitors) AS v, uniqMerge(visits), sum(pageviews)
            FROM pageviews_hourly WHERE {conditions.sql}
            GROUP BY pathname ORDER BY v DESC, pathname
            LIMIT {{limit:UInt32}} OFFSET {{offset:UInt32}}
        """  # noqa: S608
        source = "rollup"
    else:
        conditions = event_conditions(query)
        if pageviews_only:
            conditions.add("event_type = 'pageview'")
        sql = f"""
            SELECT {column} AS value, uniq(visitor_id) AS v, uniq(session_id),
                   countIf(event_type = 'pageview')
            FROM page_events WHERE {conditions.sql}
            GROUP BY value ORDER BY v DESC, value LIMIT {{limit:UInt32}} OFFSET {{offset:UInt32}}
        """  # noqa: S608
        source = "raw"
    found = rows(sql, {**conditions.parameters, "limit": limit, "offset": offset})
    return {
        "dimension": dimension,
        "source": source,
        "results": [
            {
                "value": value,
                "visitors": int(visitors),
                "visits": int(visits),
                "pageviews": int(views),
            }
            for value, visitors, visits, views in found
        ],
    }


def entry_exit_pages(
    query: ReportQuery, *, which: str = "entry", limit: int = 10
) -> dict[str, Any]:
    """Pages where visits began (or ended): visits, and for exits the exit rate."""
    if which not in {"entry", "exit"}:
        raise InvalidReportQuery("which: entry or exit")
    conditions = event_conditions(query)
    sql = f"""
        SELECT {which}_page AS page, count() AS visits, uniq(visitor) AS visitors
        FROM ({SESSION_SUMMARY.format(conditions=conditions.sql)})
        WHERE pageviews > 0
        GROUP BY page ORDER BY visits DESC, page LIMIT {{limit:UInt32}}
    """  # noqa: S608
    return {
        "which": which,
        "results": [
            {"page": page, "visits": int(visits), "visitors": int(visitors)}
            for page, visits, visitors in rows(sql, {**conditions.parameters, "limit": limit})
        ],
    }


def realtime(*, site_id: str, minutes: int = 5, include_bots: bool = False) -> dict[str, Any]:
    """Visitors active in the last ``minutes`` and the pages they are on now."""
    since = datetime.now(UTC) - timedelta(minutes=minutes)
    bots = "" if include_bots else "AND is_bot = 0"
    sql = f"""
        SELECT current_page, count() AS visitors FROM (
            SELECT visitor_id, argMax(pathname, timestamp) AS current_page
            FROM page_events
            WHERE site_id = {{site:String}} AND timestamp >= {{since:DateTime64(3, 'UTC')}} {bots}
            GROUP BY visitor_id
        )
        GROUP BY current_page ORDER BY visitors DESC, current_page
    """  # noqa: S608 (bots is one of two fixed strings)
    pages = rows(sql, {"site": site_id, "since": since})
    return {
        "minutes": minutes,
        "visitors": sum(int(count) for _, count in pages),  # each is on one page
        "pages": [{"page": page, "visitors": int(count)} for page, count in pages[:20]],
    }
