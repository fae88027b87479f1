"""What every report is asked: a site, a date range in the site's timezone (with an optional
comparison range), filters, and whether bots count. Turns them into parameterised ClickHouse
conditions: values always travel as query parameters, never formatted into the SQL, and only
column names from FILTER_COLUMNS (fixed here) appear in it.

Used by the report modules of this package; the REST API and the dashboards build a
``ReportQuery`` from request parameters (``ReportQuery.parse``) and get a 400 with the message
of ``InvalidReportQuery`` when they are wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from analytics import session_facts
from naboria import clickhouse

MAX_RANGE_DAYS = 731
# The days a period may cover (the range of ClickHouse's DateTime), so that a period and its
# comparison convert to UTC in every timezone and stay within DateTime64 parameters.
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(2105, 12, 31)
# filter name -> column of page events and of visit rows. A visit keeps the values of its first
# pageview (source, UTM, hostname) and first event (country, device...); the page is any page of
# the visit (``pages`` of a visit row).
FILTER_COLUMNS = {
    "path": "pathname",  # ("page" is the API's pagination)
    "hostname": "hostname",
    "source": "referrer_source",
    "medium": "referrer_medium",
    "utm_source": "utm_source",
    "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign",
    "country": "country",
    "device": "device_type",
    "browser": "browser",
    "os": "os",
}


class InvalidReportQuery(ValueError):
    """A parameter is missing or wrong; the message says which and why."""


@dataclass(frozen=True)
class Period:
    start: date  # first day, in the site's timezone
    end: date  # last day, inclusive
    timezone: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def start_utc(self) -> datetime:
        return datetime.combine(self.start, time(), self.zone).astimezone(UTC)

    @property
    def end_utc(self) -> datetime:
        """Exclusive: midnight after the last day, site time."""
        return datetime.combine(self.end + timedelta(days=1), time(), self.zone).astimezone(UTC)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Period:
        """The same number of days just before (the default comparison)."""
        return Period(
            self.start - timedelta(days=self.days), self.start - timedelta(days=1), self.timezone
        )


@dataclass(frozen=True)
class ReportQuery:
    site_id: str  # public id
    period: Period
    filters: Mapping[str, str] = field(default_factory=dict)
    goal: str = ""  # custom event name: only sessions that had it
    property_filter: tuple[str, str] | None = None  # (key, value) of a custom event property
    include_bots: bool = False
    compare: Period | None = None
    exact: bool = False  # no sampling of large periods
    # False computes every visit from raw events (benchmarks and tests compare the two ways).
    use_facts: bool = True

    @classmethod
    def parse(cls, *, site_id: str, timezone: str, params: Mapping[str, str]) -> ReportQuery:
        """From request parameters: ``from``, ``to`` (YYYY-MM-DD, site time), ``compare``
        (``previous`` or ``YYYY-MM-DD..YYYY-MM-DD``), ``bots`` (``include``), ``sampling``
        (``none`` for exact answers over large periods), ``goal``,
        ``property`` (``key:value``) and one parameter per filter of FILTER_COLUMNS."""
        try:
            zone_name = str(ZoneInfo(timezone))
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidReportQuery(f"unknown timezone {timezone!r}") from None
        today = datetime.now(ZoneInfo(zone_name)).date()
        start = _date(params.get("from"), "from", default=today - timedelta(days=29))
        end = _date(params.get("to"), "to", default=today)
        period = _period(start, end, zone_name)
        compare: Period | None = None
        wanted = params.get("compare", "")
        if wanted == "previous":
            compare = period.previous()
        elif wanted:
            first, _, last = wanted.partition("..")
            compare = _period(_date(first, "compare"), _date(last, "compare"), zone_name)
        filters = {}
        for name in FILTER_COLUMNS:
            value = params.get(name)
            if value is not None:
                if len(value) > 2048:
                    raise InvalidReportQuery(f"{name}: at most 2048 characters")
                filters[name] = value
        property_filter = None
        if params.get("property"):
            key, separator, value = params["property"].partition(":")
            if not separator or not key:
                raise InvalidReportQuery("property: use key:value")
            property_filter = (key, value)
        bots = params.get("bots", "exclude")
        if bots not in {"include", "exclude"}:
            raise InvalidReportQuery("bots: include or exclude")
        sampling = params.get("sampling", "auto")
        if sampling not in {"auto", "none"}:
            raise InvalidReportQuery("sampling: auto or none")
        return cls(
            site_id=site_id,
            period=period,
            filters=filters,
            goal=params.get("goal", "")[:100],
            property_filter=property_filter,
            include_bots=bots == "include",
            compare=compare,
            exact=sampling == "none",
        )

    def for_period(self, period: Period) -> ReportQuery:
        return replace(self, period=period, compare=None)

    @property
    def has_event_filters(self) -> bool:
        return bool(self.goal or self.property_filter)


def _date(text: str | None, name: str, default: date | None = None) -> date:
    if not text:
        if default is None:
            raise InvalidReportQuery(f"{name}: a date is required (YYYY-MM-DD)")
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidReportQuery(f"{name}: {text!r} is not a date (YYYY-MM-DD)") from None


def _period(start: date, end: date, timezone: str) -> Period:
    if not FIRST_DAY <= start <= end <= LAST_DAY:
        if end < start:
            raise InvalidReportQuery("to: the range ends before it starts")
        raise InvalidReportQuery(f"dates from {FIRST_DAY} to {LAST_DAY}")
    if (end - start).days >= MAX_RANGE_DAYS:
        raise InvalidReportQuery(f"the range is longer than {MAX_RANGE_DAYS} days")
    return Period(start, end, timezone)


class Conditions:
    """WHERE conditions with their parameters, named so that they never collide."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.parameters: dict[str, Any] = {}

    def add(self, clause: str, **parameters: Any) -> Conditions:
        self.clauses.append(clause)
        self.parameters.update(parameters)
        return self

    @property
    def sql(self) -> str:
        return " AND ".join(self.clauses) or "1"


def _custom_event_match(query: ReportQuery, conditions: Conditions) -> str:
    """The condition on page events of the query's goal and property (a custom event that is
    the goal, and has the property with that value); its parameters go to ``conditions``."""
    match = ["event_type = 'event'"]
    if query.goal:
        match.append("event_name = {goal:String}")
        conditions.parameters["goal"] = query.goal
    if query.property_filter:
        # An event without the key does not match an empty value.
        match.append(
            "mapContains(properties, {property_key:String}) "
            "AND properties[{property_key:String}] = {property_value:String}"
        )
        conditions.parameters.update(
            property_key=query.property_filter[0], property_value=query.property_filter[1]
        )
    return " AND ".join(match)


def visit_conditions(query: ReportQuery) -> Conditions:
    """Conditions on visit rows (the columns of session_facts) for the query's bots and filters:
    a visit passes when its own values match (source, country...), when one of its pages is the
    page filter, and when one of its custom events is the goal (with the property)."""
    conditions = Conditions()
    if not query.include_bots:
        conditions.add("is_bot = 0")
    for index, (name, value) in enumerate(sorted(query.filters.items())):
        parameter = f"{{f{index}:String}}"
        test = (
            f"has(pages, {parameter})"
            if name == "path"
            else f"{FILTER_COLUMNS[name]} = {parameter}"
        )
        conditions.add(test, **{f"f{index}": value})
    if query.property_filter:
        match = _custom_event_match(query, conditions)
        conditions.add(f"session_id IN ({session_facts.matching_visit_ids_sql(match)})")
    elif query.goal:
        conditions.add("has(goals, {goal:String})", goal=query.goal)
    return conditions


def event_conditions(query: ReportQuery) -> Conditions:
    """Conditions on page_events rows for the query's site, period, bots and filters. With a
    goal or a property, the events are those of the visits that hold a matching custom event
    (the visits of visit_conditions)."""
    conditions = Conditions()
    conditions.add("site_id = {site:String}", site=query.site_id)
    conditions.add(
        "timestamp >= {start:DateTime64(3, 'UTC')} AND timestamp < {end:DateTime64(3, 'UTC')}",
        start=query.period.start_utc,
        end=query.period.end_utc,
    )
    if not query.include_bots:
        conditions.add("is_bot = 0")
    for index, (name, value) in enumerate(sorted(query.filters.items())):
        conditions.add(f"{FILTER_COLUMNS[name]} = {{f{index}:String}}", **{f"f{index}": value})
    if query.has_event_filters:
        match = _custom_event_match(query, conditions)
        conditions.add(f"event_id IN ({session_facts.matching_visit_events_sql(match)})")
    return conditions


@dataclass(frozen=True)
class VisitRows:
    """SQL of one row per visit (the columns of ``session_facts``), its parameters, and the
    share of visitors it reads (in a thousand; counts are scaled back with ``scaled``)."""

    sql: str
    parameters: dict[str, Any]
    per_mille: int = 1000
    origin: str = "facts"  # or "raw": where the visits come from, as answers name it

    @property
    def sample_rate(self) -> float:
        return self.per_mille / 1000

    def scaled(self, count: Any) -> int:
        return round(int(count or 0) * 1000 / self.per_mille)


def visit_rows(query: ReportQuery) -> VisitRows:
    """The visits that started in the period and pass the filters: from the session facts
    (kept current for visitors with new rows; large periods read a sample of visitors unless
    ``query.exact``), or all computed from raw events when ``query.use_facts`` is False."""
    filters = visit_conditions(query)
    parameters = {
        **filters.parameters,
        "site": query.site_id,
        "start": query.period.start_utc,
        "end": query.period.end_utc,
        "max_steps": session_facts.MAX_STEPS,
    }
    if not query.use_facts:
        sql = session_facts.raw_rows_sql(filters_sql=filters.sql)
        return VisitRows(sql, parameters, origin="raw")
    sql, per_mille = session_facts.rows_sql(
        filters_sql=filters.sql,
        site_id=query.site_id,
        start=query.period.start_utc,
        end=query.period.end_utc,
        sampling=not query.exact,
    )
    return VisitRows(sql, parameters, per_mille)


def rows(sql: str, parameters: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    return list(
        clickhouse.get_client()
        .query(sql, parameters=dict(parameters), settings=session_facts.QUERY_SETTINGS)
        .result_rows
    )


def bucket_expression(interval: str) -> str:
    """A text label of the period a row falls in, in the site's timezone ({tz:String})."""
    expressions = {
        "hour": "formatDateTime(timestamp, '%Y-%m-%d %H:00', {tz:String})",
        "day": "toString(toDate(timestamp, {tz:String}))",
        "week": "toString(toMonday(timestamp, {tz:String}))",
        "month": "toString(toStartOfMonth(timestamp, {tz:String}))",
    }
    if interval not in expressions:
        raise InvalidReportQuery("interval: hour, day, week or month")
    return expressions[interval]


def bucket_labels(period: Period, interval: str) -> list[str]:
    """Every label of the period, so a timeseries has no holes."""
    labels: list[str] = []
    if interval == "hour":
        moment = datetime.combine(period.start, time(), period.zone)
        end = datetime.combine(period.end + timedelta(days=1), time(), period.zone)
        while moment < end:
            labels.append(moment.strftime("%Y-%m-%d %H:00"))
            moment = (moment.astimezone(UTC) + timedelta(hours=1)).astimezone(period.zone)
        return list(dict.fromkeys(labels))
    day = period.start
    while day <= period.end:
        if interval == "day":
            labels.append(day.isoformat())
        elif interval == "week":
            labels.append((day - timedelta(days=day.weekday())).isoformat())
        else:
            labels.append(day.replace(day=1).isoformat())
        day += timedelta(days=1)
    return list(dict.fromkeys(labels))
