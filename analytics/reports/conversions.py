"""Conversion reports: custom events and goals with conversion rates, funnels and weekly
retention cohorts. Goals, funnels and retention read one row per visit
(``analytics.reports.query.visit_rows``: a visit lists its custom events and how many times
each happened, and the properties its custom events carried), so a conversion rate's
numerator and denominator come from the same visits."""

from __future__ import annotations

from datetime import date
from typing import Any

from analytics.reports.query import (
    InvalidReportQuery,
    ReportQuery,
    literal_pattern,
    rows,
    visit_rows,
    wildcard_pattern,
)

MAX_FUNNEL_STEPS = 8
MAX_RETENTION_WEEKS = 12


def custom_events(query: ReportQuery, *, limit: int = 20) -> dict[str, Any]:
    """Each custom event of the filtered visits: visitors who did it, how many times, and the
    conversion rate (share of the visitors of those visits)."""
    visit_source = visit_rows(query)
    visitors = visit_source.distinct("visitor_hash")
    sql = f"""
        SELECT goal, {visitors} AS converted, sum(times) AS events,
               (SELECT {visitors} FROM ({visit_source.sql})) AS everyone
        FROM ({visit_source.sql}) ARRAY JOIN goals AS goal, goal_events AS times
        GROUP BY goal ORDER BY converted DESC, goal LIMIT {{limit:UInt32}}
    """  # noqa: S608
    results = []
    for name, converted, events, everyone in rows(sql, {**visit_source.parameters, "limit": limit}):
        results.append(
            {
                "goal": name,
                "visitors": visit_source.scaled(converted),
                "events": visit_source.scaled(events),
                # Both counts read the same (sampled) visitors: their ratio needs no scaling.
                "conversion_rate": round(converted / everyone * 100, 1) if everyone else 0.0,
            }
        )
    return {"sample_rate": visit_source.sample_rate, "results": results}


def event_properties(
    query: ReportQuery, *, event: str, key: str, limit: int = 20
) -> dict[str, Any]:
    """Values of one property of a custom event in the filtered visits, by visitors."""
    visit_source = visit_rows(query)
    sql = f"""
        SELECT property.3 AS value, {visit_source.distinct("visitor_hash")} AS v, sum(times)
        FROM ({visit_source.sql})
        ARRAY JOIN custom_properties AS property, custom_property_events AS times
        WHERE property.1 = {{event:String}} AND property.2 = {{key:String}}
        GROUP BY value ORDER BY v DESC, value LIMIT {{limit:UInt32}}
    """  # noqa: S608
    found = rows(sql, {**visit_source.parameters, "event": event, "key": key, "limit": limit})
    return {
        "event": event,
        "property": key,
        "sample_rate": visit_source.sample_rate,
        "results": [
            {
                "value": value,
                "visitors": visit_source.scaled(v),
                "events": visit_source.scaled(n),
            }
            for value, v, n in found
        ],
    }


def funnel(query: ReportQuery, *, steps: list[str]) -> dict[str, Any]:
    """Visits that went through the steps in order within one session, and the drop-off at
    each step. A step is a page path ("/pricing", or a pattern with ``*`` as a wildcard:
    "/blog/*") or a custom event ("event:Signup", matched exactly)."""
    if not 2 <= len(steps) <= MAX_FUNNEL_STEPS:
        raise InvalidReportQuery(f"steps: between 2 and {MAX_FUNNEL_STEPS}")
    for step in steps:
        if not step.startswith(("event:", "/")):
            raise InvalidReportQuery(f"steps: {step!r} is neither a path nor event:<name>")
    patterns = [
        wildcard_pattern(step) if step.startswith("/") else literal_pattern(step) for step in steps
    ]
    visit_source = visit_rows(query)
    # The furthest step each visit reached, taking its steps in order with anything between.
    # Each of its steps first becomes the set of funnel steps it matches (bit k: step k), one
    # LIKE per funnel step with a constant pattern (compiled once; a pattern taken from
    # an array by index is compiled row by row: this took the report from 76 to 56 ms p50 at
    # 11M events, bench/RESULTS.md).
    matches = " + ".join(
        f"bitShiftLeft(toUInt16(step LIKE {{step_{index}:String}}), {index})"
        for index in range(len(patterns))
    )
    sql = f"""
        SELECT arrayFold(
                   (level, matched) -> if(level < {len(patterns)} AND bitTest(matched, level),
                                          level + 1, level),
                   arrayMap(step -> {matches}, steps), toUInt64(0)) AS level,
               count()
        FROM ({visit_source.sql}) GROUP BY level
    """  # noqa: S608 (the expression is made here; patterns are parameters)
    by_level = {
        level: visit_source.scaled(count)
        for level, count in rows(
            sql,
            {
                **visit_source.parameters,
                **{f"step_{index}": pattern for index, pattern in enumerate(patterns)},
            },
        )
    }
    reached = [
        sum(int(count) for level, count in by_level.items() if level >= index + 1)
        for index in range(len(steps))
    ]
    results = []
    for index, step in enumerate(steps):
        previous = reached[index - 1] if index else reached[0]
        results.append(
            {
                "step": step,
                "visits": reached[index],
                "conversion_from_start": round(reached[index] / reached[0] * 100, 1)
                if reached[0]
                else 0.0,
                "drop_off": previous - reached[index] if index else 0,
            }
        )
    return {"sample_rate": visit_source.sample_rate, "steps": results}


def retention(query: ReportQuery, *, weeks: int = 8) -> dict[str, Any]:
    """Weekly cohorts by the week of a visitor's first visit in the range: how many came back
    in each following week (site time, weeks start on Monday)."""
    if not 1 <= weeks <= MAX_RETENTION_WEEKS:
        raise InvalidReportQuery(f"weeks: between 1 and {MAX_RETENTION_WEEKS}")
    visit_source = visit_rows(query)
    sql = f"""
        SELECT cohort, dateDiff('week', cohort, week) AS weeks_later, count()
        FROM (
            SELECT arrayMin(active_weeks) AS cohort, arrayJoin(active_weeks) AS week
            FROM (
                SELECT groupUniqArray(toMonday(started_at, {{tz:String}})) AS active_weeks
                FROM ({visit_source.sql}) GROUP BY visitor_hash
            )
        )
        GROUP BY cohort, weeks_later HAVING weeks_later < {{weeks:UInt8}}
        ORDER BY cohort, weeks_later
    """  # noqa: S608
    cohorts: dict[date, list[int]] = {}
    for cohort, week, visitors in rows(
        sql, {**visit_source.parameters, "tz": query.period.timezone, "weeks": weeks}
    ):
        cohorts.setdefault(cohort, [0] * weeks)[int(week)] = visit_source.scaled(visitors)
    return {
        "weeks": weeks,
        "sample_rate": visit_source.sample_rate,
        "cohorts": [
            {
                "week": cohort.isoformat(),
                "visitors": counts[0],
                "returning": counts,
                "retention": [
                    round(count / counts[0] * 100, 1) if counts[0] else 0.0 for count in counts
                ],
            }
            for cohort, counts in sorted(cohorts.items())
        ],
    }
