"""What every report is asked: a site, a date range in the site's timezone (with an optional
comparison range), filters, and whether bots count. Turns them into parameterised ClickHouse
conditions: values always travel as query parameters, never formatted into the SQL, and only
column names fixed here (VISIT_FILTERS) appear in it.

Filter semantics, defined here once (docs/analytics.md, Filters): every filter keeps or leaves
out whole visits. A visit-level filter (source, medium, UTM, country, region, city, device,
browser, OS, entry and exit page) keeps the visits whose own value matches; an event-level
one (path, hostname, goal, property) keeps the visits that contain a matching event, with all
their events and whole-visit metrics. Every report reads the same visit set (``visit_rows``), so
cards, graph and breakdowns agree.

Used by the report modules of this package; the REST API and the dashboards build a
``ReportQuery`` from request parameters (``ReportQuery.parse``) and get a 400 with the message
of ``InvalidReportQuery`` when they are wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from analytics import session_facts
from naboria import clickhouse

MAX_RANGE_DAYS = 731
# Days a report may ask for: within what ClickHouse's Date and DateTime hold (1970 to 2106;
# buckets and partitions are dates), and what Python converts to UTC in any timezone.
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(2099, 12, 31)

# Visit-level filters: name -> column of a visit row. A visit keeps the values of its first
# pageview (source, UTM, hostname, entry page), of its last (exit page) and of its first event
# (country, device...); the filter keeps the visits whose value matches.
VISIT_FILTERS = {
    "source": "referrer_source",
    "medium": "referrer_medium",
    "utm_source": "utm_source",
    "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign",
    "utm_term": "utm_term",
    "utm_content": "utm_content",
    "country": "country",
    "region": "region",
    "city": "city",
    "device": "device_type",
    "browser": "browser",
    "os": "os",
    "entry_page": "entry_page",
    "exit_page": "exit_page",
}
# Event-level filters: the filter keeps the visits that contain a matching event, whole (all
# their pageviews, their duration, bounce and entry page).
EVENT_FILTERS = {
    "path": "a pageview of this path",  # ("page" is the API's pagination)
    "hostname": "a pageview on this hostname",
    "goal": "this custom event",
    "property": "a custom event with this property, key:value",
}
FILTER_NAMES = (*VISIT_FILTERS, *EVENT_FILTERS)
MAX_FILTER_LENGTH = 2048
MAX_FILTER_VALUES = 100  # values OR'ed in one filter


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
class Filter:
    """One filter parameter, parsed. Syntax of its value (Plausible's filters, in one string):

    - ``FR`` equals; ``FR|DE`` any of them; ``!FR`` / ``!FR|DE`` none of them;
    - ``*`` anywhere is a wildcard (``/blog/*``), ``~`` first means contains (``~blog``,
      ``!~blog``, ``~blog|news``);
    - a backslash takes the next character as it is (``\\|``, ``\\*``, ``\\!`` first);
    - ``property`` is ``key:value`` with the value in this syntax (``plan:pro|team``); an empty
      value (``plan:``) matches events that have the key with an empty value.

    ``patterns`` are ``(operator, value)``: ``=`` with the value, or ``LIKE`` with a pattern.
    """

    name: str
    patterns: tuple[tuple[str, str], ...]
    negated: bool = False
    key: str = ""  # the property's key

    @classmethod
    def parse(cls, name: str, text: str) -> Filter:
        if name not in FILTER_NAMES:
            raise InvalidReportQuery(f"unknown filter {name!r}: one of {', '.join(FILTER_NAMES)}")
        if len(text) > MAX_FILTER_LENGTH:
            raise InvalidReportQuery(f"{name}: at most {MAX_FILTER_LENGTH} characters")
        key = ""
        if name == "property":
            key, separator, text = text.partition(":")
            if not separator or not key:
                raise InvalidReportQuery("property: use key:value")
        negated = text.startswith("!")
        text = text.removeprefix("!")
        contains = text.startswith("~")
        text = text.removeprefix("~")
        alternatives = _alternatives(text)
        if len(alternatives) > MAX_FILTER_VALUES:
            raise InvalidReportQuery(f"{name}: at most {MAX_FILTER_VALUES} values")
        patterns = []
        for alternative in alternatives:
            wildcard = contains or any(char == "*" and not escaped for char, escaped in alternative)
            if contains and not alternative:
                raise InvalidReportQuery(f"{name}: ~ needs a text to look for")
            if wildcard:
                like = _like_pattern(alternative)
                patterns.append(("LIKE", f"%{like}%" if contains else like))
            else:
                patterns.append(("=", "".join(char for char, _ in alternative)))
        return cls(name=name, patterns=tuple(patterns), negated=negated, key=key)

    def match(self, column: str, prefix: str) -> tuple[str, dict[str, str]]:
        """The condition that ``column`` (an SQL expression) matches one of the patterns
        (negation left to the caller: it applies to whole visits), and its parameters."""
        tests, parameters = [], {}
        for index, (operator, value) in enumerate(self.patterns):
            tests.append(f"{column} {operator} {{{prefix}_{index}:String}}")
            parameters[f"{prefix}_{index}"] = value
        return f"({' OR '.join(tests)})", parameters


def _alternatives(text: str, *, separator: str | None = "|") -> list[list[tuple[str, bool]]]:
    """``text`` split at its unescaped ``separator`` (none: not split), as (character,
    escaped) pairs."""
    alternatives: list[list[tuple[str, bool]]] = [[]]
    characters = iter(text)
    for char in characters:
        if char == "\\":
            alternatives[-1].append((next(characters, "\\"), True))
        elif char == separator:
            alternatives.append([])
        else:
            alternatives[-1].append((char, False))
    return alternatives


def wildcard_pattern(text: str) -> str:
    """``text`` as a LIKE pattern: ``*`` matches any characters (``/`` included), a backslash
    takes the next character as it is (``\\*``), ``%`` and ``_`` are plain characters."""
    return _like_pattern(_alternatives(text, separator=None)[0])


def literal_pattern(text: str) -> str:
    """A LIKE pattern that matches ``text`` exactly."""
    return "".join(_like_escaped(char) for char in text)


def _like_pattern(characters: list[tuple[str, bool]]) -> str:
    return "".join(
        "%" if char == "*" and not escaped else _like_escaped(char) for char, escaped in characters
    )


def _like_escaped(char: str) -> str:
    return "\\" + char if char in "%_\\" else char


@dataclass(frozen=True)
class ReportQuery:
    site_id: str  # public id
    period: Period
    filters: tuple[Filter, ...] = ()
    include_bots: bool = False
    compare: Period | None = None
    exact: bool = False  # no sampling of large periods, exact distinct counts
    # False computes every visit from raw events (benchmarks and tests compare the two ways).
    use_facts: bool = True

    @classmethod
    def parse(cls, *, site_id: str, timezone: str, params: Mapping[str, str]) -> ReportQuery:
        """From request parameters: ``from``, ``to`` (YYYY-MM-DD, site time), ``compare``
        (``previous`` or ``YYYY-MM-DD..YYYY-MM-DD``), ``bots`` (``include``), ``sampling``
        (``none`` for exact answers over large periods) and one parameter per filter of
        FILTER_NAMES (syntax: Filter)."""
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
            _date(compare.start.isoformat(), "compare")  # within FIRST_DAY..LAST_DAY
        elif wanted:
            first, _, last = wanted.partition("..")
            compare = _period(_date(first, "compare"), _date(last, "compare"), zone_name)
        bots = params.get("bots", "exclude")
        if bots not in {"include", "exclude"}:
            raise InvalidReportQuery("bots: include or exclude")
        sampling = params.get("sampling", "auto")
        if sampling not in {"auto", "none"}:
            raise InvalidReportQuery("sampling: auto or none")
        return cls(
            site_id=site_id,
            period=period,
            filters=filters_from(params),
            include_bots=bots == "include",
            compare=compare,
            exact=sampling == "none",
        )

    def for_period(self, period: Period) -> ReportQuery:
        return replace(self, period=period, compare=None)

    def refuse_filters(self, report: str, *, except_: Mapping[str, str] | None = None) -> None:
        """Raise InvalidReportQuery naming the first filter ``report`` cannot apply (any not
        in ``except_``)."""
        applicable = except_ or {}
        for filter_ in self.filters:
            if filter_.name not in applicable:
                can = f"only {', '.join(applicable)}" if applicable else "none"
                raise InvalidReportQuery(
                    f"{filter_.name}: the {report} report cannot apply this filter "
                    f"(filters it applies: {can})"
                )


def filters_from(params: Mapping[str, str]) -> tuple[Filter, ...]:
    """The filters among request parameters (or a saved segment's), parsed (Filter)."""
    return tuple(
        Filter.parse(name, params[name]) for name in FILTER_NAMES if params.get(name) is not None
    )


def _date(text: str | None, name: str, default: date | None = None) -> date:
    if not text:
        if default is None:
            raise InvalidReportQuery(f"{name}: a date is required (YYYY-MM-DD)")
        return default
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise InvalidReportQuery(f"{name}: {text!r} is not a date (YYYY-MM-DD)") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidReportQuery(
            f"{name}: {text!r} is out of range ({FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()})"
        )
    return day


def _period(start: date, end: date, timezone: str) -> Period:
    # Each day was checked against FIRST_DAY..LAST_DAY by _date.
    if end < start:
        raise InvalidReportQuery("to: the range ends before it starts")
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


def _visit_test(filter_: Filter, prefix: str) -> tuple[str, dict[str, str]]:
    """The condition on a visit row (the columns of session_facts) that it passes
    ``filter_``, with its parameters: its own value matches (visit-level filters), or it
    contains a matching event (event-level ones); negated, that it does not."""
    if filter_.name in VISIT_FILTERS:
        test, parameters = filter_.match(VISIT_FILTERS[filter_.name], prefix)
    elif filter_.name == "property":  # (event, key, value) of each of its custom events
        test, parameters = filter_.match("item.3", prefix)
        # An event without the key does not match an empty value.
        key = f"{{{prefix}_key:String}}"
        test = f"arrayExists(item -> item.2 = {key} AND {test}, custom_properties)"
        parameters[f"{prefix}_key"] = filter_.key
    else:  # path, goal, hostname: the visit row lists its pages, goals and hostnames
        test, parameters = filter_.match("item", prefix)
        array = {"path": "pages", "goal": "goals", "hostname": "hostnames"}[filter_.name]
        test = f"arrayExists(item -> {test}, {array})"
    return (f"NOT {test}" if filter_.negated else test), parameters


def column_conditions(
    query: ReportQuery, conditions: Conditions, *, report: str, columns: Mapping[str, str]
) -> Conditions:
    """Adds to ``conditions`` the query's filters as tests on the rows of a table other than
    the page events (``columns``: filter name -> its column there); refuses (400) a filter
    that has no column there, rather than answering as if it were not asked for."""
    query.refuse_filters(report, except_=columns)
    for index, filter_ in enumerate(query.filters):
        test, parameters = filter_.match(columns[filter_.name], f"f{index}")
        conditions.add(f"NOT {test}" if filter_.negated else test, **parameters)
    return conditions


def visit_conditions(query: ReportQuery) -> Conditions:
    """Conditions on visit rows (the columns of session_facts) for the query's bots and
    filters: each filter keeps or leaves out whole visits (_visit_test)."""
    conditions = Conditions()
    if not query.include_bots:
        conditions.add("is_bot = 0")
    for index, filter_ in enumerate(query.filters):
        test, parameters = _visit_test(filter_, f"f{index}")
        conditions.add(test, **parameters)
    return conditions


@dataclass(frozen=True)
class VisitRows:
    """SQL of one row per visit (the columns of ``session_facts``), its parameters, and the
    share of visitors it reads (in a thousand; counts are scaled back with ``scaled``)."""

    sql: str
    parameters: dict[str, Any]
    per_mille: int = 1000
    origin: str = "facts"  # or "raw": where the visits come from, as answers name it
    exact: bool = False  # distinct counts exact (uniqExact) rather than within about 1 %

    @property
    def sample_rate(self) -> float:
        return self.per_mille / 1000

    def distinct(self, column: str) -> str:
        """The SQL that counts the distinct values of ``column``."""
        return f"{'uniqExact' if self.exact else 'uniq'}({column})"

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
        return VisitRows(sql, parameters, origin="raw", exact=query.exact)
    sql, per_mille = session_facts.rows_sql(
        filters_sql=filters.sql,
        site_id=query.site_id,
        start=query.period.start_utc,
        end=query.period.end_utc,
        sampling=not query.exact,
    )
    return VisitRows(sql, parameters, per_mille, exact=query.exact)


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
