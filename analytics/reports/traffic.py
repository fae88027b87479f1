"""Traffic reports: overview, timeseries, breakdowns (pages, entry and exit pages, sources,
UTM source / medium / campaign / term / content, countries, regions, cities, devices,
browsers, operating systems) and realtime.

Definitions (the dashboards and docs/analytics.md use the same words):
- a **visit** is a session (30 minutes without activity ends it); it belongs to the period in
  which it started; **visitors** are distinct visitor ids;
- **bounce**: a visit with a single pageview and no custom event;
- **visit duration**: from its first to its last event (engagement reports extend it).

Visits come from the session facts (``analytics.session_facts``: one row per visit, kept
current at query time), made from the deduplicated raw events by the visit rule of
events.visits; every filter keeps or leaves out whole visits (query.visit_conditions). The
graph counts what the cards count: a visit and all its pageviews (those after the period's end
too) in the bucket where it started. Distinct counts use ClickHouse's ``uniq`` (exact for small
sets, within about 1 % beyond), ``uniqExact`` with ``sampling=none``. Facts and raw events give
the same numbers (tests compare them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from analytics.reports.query import (
    InvalidReportQuery,
    ReportQuery,
    VisitRows,
    bucket_expression,
    bucket_labels,
    rows,
    visit_rows,
)
from events.visits import NOT_AN_UPDATE

BREAKDOWNS = {
    # name -> column of a visit row (a visit has several pages)
    "pages": "pages",
    "hostnames": "hostname",
    "sources": "referrer_source",
    "mediums": "referrer_medium",
    "utm_sources": "utm_source",
    "utm_mediums": "utm_medium",
    "utm_campaigns": "utm_campaign",
    "utm_terms": "utm_term",
    "utm_contents": "utm_content",
    "countries": "country",
    "regions": "region",
    "cities": "city",
    "devices": "device_type",
    "browsers": "browser",
    "operating_systems": "os",
}
# Names of places repeat (a Georgia in the US and in the Caucasus, a Paris in Texas): a region
# is listed with its country and a city with its country and region, each a row of its own.
PLACE_COLUMNS = {"regions": ("country",), "cities": ("country", "region")}


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
    return _with_comparison(query, *_overview(query))


def _with_comparison(query: ReportQuery, current: Overview, sample_rate: float) -> dict[str, Any]:
    answer: dict[str, Any] = {"period": current.as_dict(), "sample_rate": sample_rate}
    if query.compare is not None:
        previous, _ = _overview(query.for_period(query.compare))
        answer["compare"] = previous.as_dict()
        answer["change"] = {
            name: _change(value, previous.as_dict()[name])
            for name, value in current.as_dict().items()
        }
    return answer


def _change(now: float, before: float) -> float | None:
    return None if not before else round((now - before) / before * 100, 1)


def _overview_aggregates(visit_source: VisitRows) -> str:
    """The overview's aggregates over visit rows, in the order _overview_of reads them."""
    return f"""
        {visit_source.distinct("visitor_hash")}, count(), sum(pageviews), sum(is_bounce),
        avg(toUnixTimestamp64Milli(ended_at) - toUnixTimestamp64Milli(started_at))
    """


def _overview(query: ReportQuery) -> tuple[Overview, float]:
    visit_source = visit_rows(query)
    sql = f"SELECT {_overview_aggregates(visit_source)} FROM ({visit_source.sql})"  # noqa: S608
    return _overview_of(rows(sql, visit_source.parameters)[0], visit_source)


def _overview_of(aggregates: tuple[Any, ...], visit_source: VisitRows) -> tuple[Overview, float]:
    visitors, visits, pageviews, bounces, duration_ms = aggregates
    overview = Overview(
        visitors=visit_source.scaled(visitors),
        visits=visit_source.scaled(visits),
        pageviews=visit_source.scaled(pageviews),
        views_per_visit=round(pageviews / visits, 2) if visits else 0.0,
        bounce_rate=round(bounces / visits * 100, 1) if visits else 0.0,
        visit_duration_seconds=round((duration_ms or 0) / 1000, 1) if visits else 0.0,
    )
    return overview, visit_source.sample_rate


def timeseries(query: ReportQuery, *, interval: str = "day") -> dict[str, Any]:
    """Visitors, visits and their pageviews per hour, day, week or month (site time, by the
    time a visit started), without holes."""
    bucket = _checked_bucket(query, interval)
    visit_source = visit_rows(query)
    visits = rows(
        f"""
        SELECT {bucket} AS bucket, {visit_source.distinct("visitor_hash")}, count(), sum(pageviews)
        FROM ({visit_source.sql}) GROUP BY bucket
        """,  # noqa: S608
        {**visit_source.parameters, "tz": query.period.timezone},
    )
    return _timeseries_answer(query, interval=interval, visits=visits, visit_source=visit_source)


def _timeseries_answer(
    query: ReportQuery,
    *,
    interval: str,
    visits: list[tuple[Any, ...]],
    visit_source: VisitRows,
) -> dict[str, Any]:
    """The timeseries answer from (bucket, visitors, visits, pageviews) rows of visit_source."""
    found = {label: [visit_source.scaled(count) for count in counts] for label, *counts in visits}
    return {
        "interval": interval,
        "source": visit_source.origin,
        "sample_rate": visit_source.sample_rate,
        "points": [
            dict(
                zip(
                    ("date", "visitors", "visits", "pageviews"),
                    (label, *found.get(label, (0, 0, 0))),
                    strict=True,
                )
            )
            for label in bucket_labels(query.period, interval)
        ],
    }


def _checked_bucket(query: ReportQuery, interval: str) -> str:
    """The bucket of a visit row (by its start), refusing an unknown interval or too many."""
    bucket = bucket_expression(interval).replace("timestamp", "started_at")
    if len(bucket_labels(query.period, interval)) > 2000:
        raise InvalidReportQuery("interval: too many points for this range; use a longer one")
    return bucket


def breakdown(
    query: ReportQuery, *, dimension: str, limit: int = 10, offset: int = 0
) -> dict[str, Any]:
    """Top values of a dimension with visitors, visits and pageviews, most visitors first.

    Pages count the visits and visitors that viewed them and their pageviews; every other
    dimension is a property of the visit, counted once per visit with all its pageviews."""
    if dimension not in BREAKDOWNS:
        raise InvalidReportQuery(f"dimension: one of {', '.join(sorted(BREAKDOWNS))}")
    return _breakdown(
        query, dimension=dimension, limit=limit, offset=offset, visit_source=visit_rows(query)
    )


def _breakdown(
    query: ReportQuery, *, dimension: str, limit: int, offset: int, visit_source: VisitRows
) -> dict[str, Any]:
    places = "".join(f", {column}" for column in PLACE_COLUMNS.get(dimension, ()))
    if dimension == "pages":
        # Each page a visit viewed, with how many times.
        value = "page"
        source = f"""
            SELECT visitor_hash, page, views FROM ({visit_source.sql})
            ARRAY JOIN pages AS page, page_views AS views
        """  # noqa: S608
    else:
        value = BREAKDOWNS[dimension]
        source = (
            f"SELECT visitor_hash, {value}{places}, pageviews AS views FROM ({visit_source.sql})"  # noqa: S608
        )
    sql = f"""
        SELECT {value} AS value, {visit_source.distinct("visitor_hash")} AS v, count(), sum(views)
               {places}
        FROM ({source})
        GROUP BY value {places}
        ORDER BY v DESC, value {places} LIMIT {{limit:UInt32}} OFFSET {{offset:UInt32}}
    """  # noqa: S608
    found = rows(sql, {**visit_source.parameters, "limit": limit, "offset": offset})
    return _breakdown_answer(query, dimension=dimension, found=found, visit_source=visit_source)


def _breakdown_answer(
    query: ReportQuery, *, dimension: str, found: list[Any], visit_source: VisitRows
) -> dict[str, Any]:
    """The breakdown answer from (value, visitors, visits, pageviews, *PLACE_COLUMNS) rows of
    visit_source."""
    places = PLACE_COLUMNS.get(dimension, ())
    return {
        "dimension": dimension,
        "source": visit_source.origin,
        "sample_rate": visit_source.sample_rate,
        "results": [
            {
                "value": value,
                "visitors": visit_source.scaled(visitors),
                "visits": visit_source.scaled(visits),
                "pageviews": visit_source.scaled(views),
                **dict(zip(places, where, strict=True)),
            }
            for value, visitors, visits, views, *where in found
        ],
    }


# The top lists of the dashboard's overview tab besides pages (properties of the visit).
DASHBOARD_LISTS = ("sources", "countries", "devices", "browsers")


def dashboard(query: ReportQuery, *, interval: str = "day", limit: int = 8) -> dict[str, Any]:
    """What the dashboard's overview tab shows, in as few queries as possible: the overview
    (with the comparison when asked), the graph, and the top pages, sources, countries,
    devices and browsers. One scan of the visits answers the overview, the graph's visitors
    and visits and the top lists (GROUPING SETS); pages read the same visits again, and the
    comparison takes its own."""
    bucket = _checked_bucket(query, interval)
    columns = [BREAKDOWNS[name] for name in DASHBOARD_LISTS]
    visit_source = visit_rows(query)
    sql = f"""
        SELECT grouping(bucket), {", ".join(f"grouping({column})" for column in columns)},
               bucket, {", ".join(columns)}, {_overview_aggregates(visit_source)}
        FROM (SELECT *, {bucket} AS bucket FROM ({visit_source.sql}))
        GROUP BY GROUPING SETS ((), (bucket), {", ".join(f"({column})" for column in columns)})
    """  # noqa: S608 (column names come from BREAKDOWNS; values are parameters)
    found = rows(sql, {**visit_source.parameters, "tz": query.period.timezone})
    width = len(columns) + 1
    totals: tuple[Any, ...] = (0, 0, 0, 0, 0.0)
    points = []
    lists: dict[str, list[tuple[Any, ...]]] = {name: [] for name in DASHBOARD_LISTS}
    for row in found:
        flags, values, aggregates = row[:width], row[width : 2 * width], row[2 * width :]
        if all(flags):
            totals = aggregates
        elif flags[0] == 0:
            points.append((values[0], *aggregates[:3]))
        else:
            index = flags.index(0, 1) - 1
            lists[DASHBOARD_LISTS[index]].append((values[index + 1], *aggregates[:3]))
    breakdowns = {
        "pages": _breakdown(
            query, dimension="pages", limit=limit, offset=0, visit_source=visit_source
        )
    }
    for name, entries in lists.items():
        entries.sort(key=lambda entry: (-entry[1], entry[0]))
        breakdowns[name] = _breakdown_answer(
            query, dimension=name, found=entries[:limit], visit_source=visit_source
        )
    return {
        "overview": _with_comparison(query, *_overview_of(totals, visit_source)),
        "timeseries": _timeseries_answer(
            query, interval=interval, visits=points, visit_source=visit_source
        ),
        "breakdowns": breakdowns,
    }


def entry_exit_pages(
    query: ReportQuery, *, which: str = "entry", limit: int = 10
) -> dict[str, Any]:
    """Pages where visits began (or ended), with their visits and visitors."""
    if which not in {"entry", "exit"}:
        raise InvalidReportQuery("which: entry or exit")
    visit_source = visit_rows(query)
    sql = f"""
        SELECT {which}_page AS page, count() AS visits,
               {visit_source.distinct("visitor_hash")} AS visitors
        FROM ({visit_source.sql})
        WHERE pageviews > 0
        GROUP BY page ORDER BY visits DESC, page LIMIT {{limit:UInt32}}
    """  # noqa: S608
    found = rows(sql, {**visit_source.parameters, "limit": limit})
    return {
        "which": which,
        "sample_rate": visit_source.sample_rate,
        "results": [
            {
                "page": page,
                "visits": visit_source.scaled(visits),
                "visitors": visit_source.scaled(visitors),
            }
            for page, visits, visitors in found
        ],
    }


REALTIME_MINUTES = 5


def _active_visitors_sql(*, where: str, include_bots: bool) -> str:
    """Each visitor with an event in the last minutes ({since:DateTime64}) and the page of
    their latest one: the realtime report's definition of "on the site now" (an app updating
    itself is not a visitor on it)."""
    bots = "" if include_bots else "AND is_bot = 0"
    return f"""
        SELECT site_id, visitor_id, argMax(pathname, timestamp) AS current_page
        FROM page_events
        WHERE {where} AND timestamp >= {{since:DateTime64(3, 'UTC')}} AND {NOT_AN_UPDATE}
            {bots}
        GROUP BY site_id, visitor_id
    """  # noqa: S608 (where and bots are fixed strings of this module)


def realtime(
    *, site_id: str, minutes: int = REALTIME_MINUTES, include_bots: bool = False
) -> dict[str, Any]:
    """Visitors active in the last ``minutes`` and the pages they are on now."""
    since = datetime.now(UTC) - timedelta(minutes=minutes)
    active = _active_visitors_sql(where="site_id = {site:String}", include_bots=include_bots)
    sql = f"""
        SELECT current_page, count() AS visitors FROM ({active})
        GROUP BY current_page ORDER BY visitors DESC, current_page
    """  # noqa: S608 (active is built above from fixed strings)
    pages = rows(sql, {"site": site_id, "since": since})
    return {
        "minutes": minutes,
        "visitors": sum(int(count) for _, count in pages),  # each is on one page
        "pages": [{"page": page, "visitors": int(count)} for page, count in pages[:20]],
    }


def realtime_visitors_by_site(*, minutes: int = REALTIME_MINUTES) -> dict[str, int]:
    """The realtime report's visitor count (bots left out) of every site that has any, by the
    site's public id: one query for all sites (the operator's view, ``manage.py top``)."""
    since = datetime.now(UTC) - timedelta(minutes=minutes)
    active = _active_visitors_sql(where="1 = 1", include_bots=False)
    sql = f"SELECT site_id, count() FROM ({active}) GROUP BY site_id"  # noqa: S608
    return {site: int(count) for site, count in rows(sql, {"since": since})}
