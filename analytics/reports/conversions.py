"""Conversion reports: custom events and goals with conversion rates, funnels and weekly
retention cohorts. All read raw page events (sessions and visitors need every step)."""

from __future__ import annotations

from datetime import date
from typing import Any

from analytics.reports.query import InvalidReportQuery, ReportQuery, event_conditions, rows

MAX_FUNNEL_STEPS = 8
MAX_RETENTION_WEEKS = 12


def custom_events(query: ReportQuery, *, limit: int = 20) -> dict[str, Any]:
    """Each custom event: visitors who did it, how many times, and the conversion rate (share
    of the period's visitors)."""
    conditions = event_conditions(query)
    sql = f"""
        SELECT event_name, uniqIf(visitor_id, event_type = 'event') AS converted,
               countIf(event_type = 'event') AS events,
               (SELECT uniq(visitor_id) FROM page_events WHERE {conditions.sql}) AS everyone
        FROM page_events WHERE {conditions.sql} AND event_type = 'event'
        GROUP BY event_name ORDER BY converted DESC, event_name LIMIT {{limit:UInt32}}
    """  # noqa: S608
    results = []
    for name, converted, events, everyone in rows(sql, {**conditions.parameters, "limit": limit}):
        results.append(
            {
                "goal": name,
                "visitors": int(converted),
                "events": int(events),
                "conversion_rate": round(converted / everyone * 100, 1) if everyone else 0.0,
            }
        )
    return {"results": results}


def event_properties(
    query: ReportQuery, *, event: str, key: str, limit: int = 20
) -> dict[str, Any]:
    """Values of one property of a custom event, by visitors."""
    conditions = event_conditions(query)
    conditions.add("event_type = 'event' AND event_name = {event:String}", event=event)
    sql = f"""
        SELECT properties[{{key:String}}] AS value, uniq(visitor_id) AS v, count()
        FROM page_events WHERE {conditions.sql} AND mapContains(properties, {{key:String}})
        GROUP BY value ORDER BY v DESC, value LIMIT {{limit:UInt32}}
    """  # noqa: S608
    found = rows(sql, {**conditions.parameters, "key": key, "limit": limit})
    return {
        "event": event,
        "property": key,
        "results": [
            {"value": value, "visitors": int(v), "events": int(n)} for value, v, n in found
        ],
    }


def funnel(query: ReportQuery, *, steps: list[str]) -> dict[str, Any]:
    """Visits that went through the steps in order within one session, and the drop-off at
    each step. A step is a page path ("/pricing") or a custom event ("event:Signup")."""
    if not 2 <= len(steps) <= MAX_FUNNEL_STEPS:
        raise InvalidReportQuery(f"steps: between 2 and {MAX_FUNNEL_STEPS}")
    conditions = event_conditions(query)
    step_conditions = []
    for index, step in enumerate(steps):
        if step.startswith("event:"):
            step_conditions.append(f"event_type = 'event' AND event_name = {{s{index}:String}}")
            conditions.parameters[f"s{index}"] = step.removeprefix("event:")
        elif step.startswith("/"):
            step_conditions.append(f"event_type = 'pageview' AND pathname = {{s{index}:String}}")
            conditions.parameters[f"s{index}"] = step
        else:
            raise InvalidReportQuery(f"steps: {step!r} is neither a path nor event:<name>")
    sql = f"""
        SELECT level, count() FROM (
            SELECT session_id,
                   windowFunnel(86400, 'strict_order')(
                       toDateTime(timestamp), {", ".join(step_conditions)}) AS level
            FROM page_events WHERE {conditions.sql}
            GROUP BY session_id
        )
        GROUP BY level
    """  # noqa: S608
    by_level = dict(rows(sql, conditions.parameters))
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
    return {"steps": results}


def retention(query: ReportQuery, *, weeks: int = 8) -> dict[str, Any]:
    """Weekly cohorts by the week of a visitor's first visit in the range: how many came back
    in each following week (site time, weeks start on Monday)."""
    if not 1 <= weeks <= MAX_RETENTION_WEEKS:
        raise InvalidReportQuery(f"weeks: between 1 and {MAX_RETENTION_WEEKS}")
    conditions = event_conditions(query)
    sql = f"""
        SELECT cohort, dateDiff('week', cohort, active_week) AS week, uniq(visitor_id)
        FROM (
            SELECT visitor_id, toMonday(timestamp, {{tz:String}}) AS active_week,
                   min(toMonday(timestamp, {{tz:String}})) OVER (PARTITION BY visitor_id) AS cohort
            FROM page_events WHERE {conditions.sql}
        )
        GROUP BY cohort, week HAVING week < {{weeks:UInt8}}
        ORDER BY cohort, week
    """  # noqa: S608
    cohorts: dict[date, list[int]] = {}
    for cohort, week, visitors in rows(
        sql, {**conditions.parameters, "tz": query.period.timezone, "weeks": weeks}
    ):
        cohorts.setdefault(cohort, [0] * weeks)[int(week)] = int(visitors)
    return {
        "weeks": weeks,
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
