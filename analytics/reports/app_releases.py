"""App release reports: how an app's over-the-air updates spread and fail, from the update
lifecycle events (events.schemas.UPDATE_EVENT_TYPES; docs/app-releases.md).

Storage, chosen deliberately: the update events are page events of their own types in
``page_events``, their typed payload (validated by msgspec at ingestion) in the ``properties``
map under the field names, the device's OS in the ``os`` columns. So they travel the one
ingestion path (/collect, the same consent and identity rules, Kafka or the direct writer, the
drain) and are deduplicated by event id like every page event: a retried batch changes no
number here. A table of their own would have needed another topic, sink and drain consumer for
a low-volume stream, and typed columns would widen the table every page event is written to.
The cost is reading numbers out of text (``toFloat64OrNull``), which only these reports do.
The visit rule leaves the update events out (events.visits), so they change no traffic report.

A **device** is the visitor id (the browser id given with analytics consent; otherwise the
server's anonymous id, which changes daily). Every report reads one site's update events of
the period ``[from, to]`` (site time), optionally of one ``app``; bots left out unless asked
for; the ``country``, ``os`` and ``device`` filters apply to the events, others are refused.
Numbers are exact (no sampling).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analytics.reports.query import (
    Conditions,
    InvalidReportQuery,
    ReportQuery,
    bucket_expression,
    bucket_labels,
    column_conditions,
    rows,
)
from events.schemas import UPDATE_EVENT_TYPES

# The filters of ReportQuery these reports apply, and the event column each tests.
EVENT_COLUMNS = {"country": "country", "os": "os", "device": "device_type"}
INTERVALS = ("hour", "day")
FAILURE_BREAKDOWNS = {
    "error_code": "properties['error_code']",
    "failure_stage": "properties['failure_stage']",
    "target_version": "properties['target_version']",
    "device_model": "properties['device_model']",
}
PERCENTILES = (0.5, 0.9, 0.99)
# The version a device runs once it sent an event: the release it installed, else the one it
# ran when it sent it (after a rollback, the version it went back to).
_RUNNING_VERSION = (
    "if(event_type = 'update_installed', properties['target_version'], "
    "properties['current_version'])"
)
# Megabits per second of a completed download: as the app measured it, or from its size and
# duration when it gave those only.
_DOWNLOAD_MBPS = (
    "coalesce(toFloat64OrNull(properties['download_speed_mbps']), "
    "toFloat64OrNull(properties['package_size_bytes']) * 8 / 1000 "
    "/ nullIf(toFloat64OrNull(properties['download_duration_ms']), 0))"
)


@dataclass(frozen=True)
class AppScope:
    """The events a report reads: SQL conditions on page events, and their parameters."""

    sql: str
    parameters: dict[str, Any]


def app_scope(
    query: ReportQuery, *, app: str, report: str, update_events_only: bool = True
) -> AppScope:
    """Conditions for the site's events of the period (of ``app`` when given): the update
    events, or with ``update_events_only=False`` every event an app sent (app_id set)."""
    conditions = Conditions().add(
        "site_id = {site:String} AND timestamp >= {start:DateTime64(3, 'UTC')} "
        "AND timestamp < {end:DateTime64(3, 'UTC')}",
        site=query.site_id,
        start=query.period.start_utc,
        end=query.period.end_utc,
        tz=query.period.timezone,
    )
    if update_events_only:
        conditions.add(
            "event_type IN {update_types:Array(String)}", update_types=list(UPDATE_EVENT_TYPES)
        )
    if app:
        conditions.add("app_id = {app:String}", app=app)
    else:
        conditions.add("app_id != ''")
    if not query.include_bots:
        conditions.add("is_bot = 0")
    column_conditions(query, conditions, report=report, columns=EVENT_COLUMNS)
    return AppScope(conditions.sql, conditions.parameters)


def _rate(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 2) if whole else None


def adoption(query: ReportQuery, *, app: str = "", interval: str = "hour") -> dict[str, Any]:
    """Updates over the period: started, installed, failed, cancelled, rolled back (events),
    the devices that installed one, and the success rate (installs out of installs and
    failures, %); per hour (or day), site time, every bucket listed."""
    if interval not in INTERVALS:
        raise InvalidReportQuery("interval: hour or day")
    scope = app_scope(query, app=app, report="app-adoption")
    counts = """
        countIf(event_type = 'update_installed') AS installs,
        countIf(event_type = 'update_failed') AS failures
    """
    totals = rows(
        f"""
        SELECT countIf(event_type = 'update_started'), {counts},
               countIf(event_type = 'update_cancelled'),
               countIf(event_type = 'rollback_completed'),
               uniqExactIf(visitor_id, event_type = 'update_installed')
        FROM page_events WHERE {scope.sql}
        """,  # noqa: S608 (conditions made by app_scope; values are parameters)
        scope.parameters,
    )[0]
    started, installs, failures, cancelled, rolled_back, devices = (int(v) for v in totals)
    buckets = {
        label: (int(bucket_installs), int(bucket_failures))
        for label, bucket_installs, bucket_failures in rows(
            f"""
            SELECT {bucket_expression(interval)} AS bucket, {counts}
            FROM page_events WHERE {scope.sql} GROUP BY bucket
            """,  # noqa: S608
            scope.parameters,
        )
    }
    return {
        "app": app,
        "interval": interval,
        "updates_started": started,
        "installs": installs,
        "failures": failures,
        "cancellations": cancelled,
        "rollbacks": rolled_back,
        "devices_updated": devices,
        "success_rate": _rate(installs, installs + failures),
        "points": [
            _adoption_point(label, *buckets.get(label, (0, 0)))
            for label in bucket_labels(query.period, interval)
        ],
    }


def _adoption_point(label: str, installs: int, failures: int) -> dict[str, Any]:
    return {
        "date": label,
        "installs": installs,
        "failures": failures,
        "success_rate": _rate(installs, installs + failures),
    }


def versions(query: ReportQuery, *, app: str = "") -> dict[str, Any]:
    """The versions the devices that sent update events in the period run at its end: each
    device's version after its latest update event (_RUNNING_VERSION), most devices first."""
    scope = app_scope(query, app=app, report="app-versions")
    found = rows(
        f"""
        SELECT version, count() AS devices FROM (
            SELECT visitor_id, argMax({_RUNNING_VERSION}, (timestamp, event_id)) AS version
            FROM page_events WHERE {scope.sql} GROUP BY visitor_id
        )
        GROUP BY version ORDER BY devices DESC, version
        """,  # noqa: S608
        scope.parameters,
    )
    total = sum(int(devices) for _, devices in found)
    return {
        "app": app,
        "total_devices": total,
        "results": [
            {"version": version, "devices": int(devices), "percentage": _rate(int(devices), total)}
            for version, devices in found
        ],
    }


def active_devices(query: ReportQuery, *, app: str = "") -> dict[str, Any]:
    """Devices that sent any event of an app (screens, custom events, updates) per day, site
    time, and over the whole period."""
    scope = app_scope(query, app=app, report="app-active-devices", update_events_only=False)
    per_day = {
        day: int(devices)
        for day, devices in rows(
            f"""
            SELECT {bucket_expression("day")} AS day, uniqExact(visitor_id)
            FROM page_events WHERE {scope.sql} GROUP BY day
            """,  # noqa: S608
            scope.parameters,
        )
    }
    total = rows(
        f"SELECT uniqExact(visitor_id) FROM page_events WHERE {scope.sql}",  # noqa: S608
        scope.parameters,
    )[0][0]
    return {
        "app": app,
        "devices": int(total),
        "points": [
            {"date": day, "devices": per_day.get(day, 0)}
            for day in bucket_labels(query.period, "day")
        ],
    }


def failures(query: ReportQuery, *, app: str = "", limit: int = 10) -> dict[str, Any]:
    """Failed updates (events) and the devices they happened on, in all and broken down by
    error code, failure stage, target version and device model (each its ``limit`` largest),
    with the failure rate of each target version (failures out of installs and failures)."""
    scope = app_scope(query, app=app, report="app-failures")
    failed = f"{scope.sql} AND event_type = 'update_failed'"
    total, devices = rows(
        f"SELECT count(), uniqExact(visitor_id) FROM page_events WHERE {failed}",  # noqa: S608
        scope.parameters,
    )[0]
    breakdowns: dict[str, list[dict[str, Any]]] = {}
    for name, column in FAILURE_BREAKDOWNS.items():
        breakdowns[name] = [
            {"value": value, "failures": int(count), "devices": int(devices_of)}
            for value, count, devices_of in rows(
                f"""
                SELECT {column} AS value, count() AS failures, uniqExact(visitor_id)
                FROM page_events WHERE {failed}
                GROUP BY value ORDER BY failures DESC, value LIMIT {{limit:UInt32}}
                """,  # noqa: S608 (columns fixed above)
                {**scope.parameters, "limit": limit},
            )
        ]
    rates = {
        version: _rate(int(failed_count), int(failed_count) + int(installed))
        for version, failed_count, installed in rows(
            f"""
            SELECT properties['target_version'] AS version,
                   countIf(event_type = 'update_failed'), countIf(event_type = 'update_installed')
            FROM page_events WHERE {scope.sql} GROUP BY version
            """,  # noqa: S608
            scope.parameters,
        )
    }
    for row in breakdowns["target_version"]:
        row["failure_rate"] = rates.get(row["value"])
    return {"app": app, "failures": int(total), "devices": int(devices), **breakdowns}


def _percentiles(samples: int, levels: list[float]) -> dict[str, Any]:
    """How many values were measured and their percentiles (None without any)."""
    return {
        "samples": samples,
        **{
            f"p{round(level * 100)}": round(float(value), 2) if samples else None
            for level, value in zip(PERCENTILES, levels, strict=True)
        },
    }


def performance(query: ReportQuery, *, app: str = "") -> dict[str, Any]:
    """Percentiles (p50, p90, p99: exact, each a measured value) of completed downloads'
    speed (Mbps) and duration (ms) and of successful installs' duration (ms), overall and per
    target version, with how many events measured each."""
    scope = app_scope(query, app=app, report="app-performance")
    levels = ", ".join(str(level) for level in PERCENTILES)
    measures = {
        "download_speed_mbps": ("update_downloaded", _DOWNLOAD_MBPS),
        "download_duration_ms": (
            "update_downloaded",
            "toFloat64OrNull(properties['download_duration_ms'])",
        ),
        "install_duration_ms": (
            "update_installed",
            "toFloat64OrNull(properties['install_duration_ms'])",
        ),
    }
    selected = ", ".join(
        f"countIf(isNotNull({value}) AND event_type = '{kind}'), "
        f"quantilesExactIf({levels})(assumeNotNull({value}), "
        f"isNotNull({value}) AND event_type = '{kind}')"
        for kind, value in measures.values()
    )
    found = rows(
        f"""
        SELECT '' AS version, {selected} FROM page_events WHERE {scope.sql}
        UNION ALL
        SELECT properties['target_version'] AS version, {selected}
        FROM page_events
        WHERE {scope.sql} AND event_type IN ('update_downloaded', 'update_installed')
        GROUP BY version
        """,  # noqa: S608 (measures fixed above)
        scope.parameters,
    )

    def described(row: tuple[Any, ...]) -> dict[str, Any]:
        return {
            name: _percentiles(int(row[1 + 2 * index]), row[2 + 2 * index])
            for index, name in enumerate(measures)
        }

    overall = next(row for row in found if row[0] == "")
    by_version = sorted((row for row in found if row[0] != ""), key=lambda row: row[0])
    return {
        "app": app,
        **described(overall),
        "versions": [{"version": row[0], **described(row)} for row in by_version],
    }
