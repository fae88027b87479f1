"""The visit rule: which page events make a visit, decided by event time, never by arrival.

For one visitor of one site, events are taken in the order of their time (ties: pageviews
first, then by event id, so every reader orders them alike):

- **activity** is a pageview, a custom event, an outbound-link click or a file download;
  ``engagement`` (sent when a page is hidden: visible time, scroll depth) is not: it reports on a
  pageview, it is not something the visitor did then;
- activity more than ``VISIT_GAP`` after the visitor's previous activity (or the first) opens a
  new run; an engagement event joins the run of the activity before it, however late it comes
  (a tab left open for an hour still reports on its pageview);
- a run is a **visit** only if it holds a pageview: no visit without a pageview. Events of a run
  without one (a custom event sent by a server, a click long after the page was left) are kept
  and counted as events, but belong to no visit (``visit_id`` '');
- a visit starts at its first activity and ends at its last: engagement does not lengthen it.
  A visit with one pageview and no other activity is a **bounce**; an outbound click, a
  download or a custom event is an interaction, so such a visit is not one.

App update events (``events.schemas.UPDATE_EVENT_TYPES``: an app downloading or installing a
release, often in the background) are a device's doings, not the visitor's: they belong to no
visit and neither open, lengthen nor interact with one. The release reports read them apart.

The same events in any order of arrival give the same visits, and a late or offline event
joins, extends, splits or merges visits as it would have on time: readers compute visits from
the stored events when they read them (the session facts by day, reports for what the facts do
not hold yet, the dbt marts through the ``page_event_visits`` view). A visit's id is a hash of
its site, visitor and start, so it is the same for every reader and every run.

Readers look at events within ``VISIT_SPAN`` of the range they want, so a visitor active
without a pause of ``VISIT_GAP`` for longer than that (no person; some bots) has the start of
that run cut at the edge of the window.

Entry points: VISIT_GAP, VISIT_SPAN, NOT_AN_UPDATE, numbered_events_sql, visit_events_sql,
VISIT_ID, PAGE_EVENT_VISITS_VIEW_SQL.
"""

from __future__ import annotations

from datetime import timedelta

from events.schemas import UPDATE_EVENT_TYPES

VISIT_GAP = timedelta(minutes=30)
VISIT_SPAN = timedelta(days=1)
_GAP_MS = int(VISIT_GAP.total_seconds() * 1000)

IS_ACTIVITY = "event_type != 'engagement'"
# The events the visit rule (and "on the site now") reads: all page events but app updates.
NOT_AN_UPDATE = f"event_type NOT IN ({', '.join(repr(kind) for kind in UPDATE_EVENT_TYPES)})"
# The order of a visitor's events, shared by every window over them.
_TIMELINE = (
    "PARTITION BY site_id, visitor_id ORDER BY timestamp, event_type != 'pageview', event_id"
)


def numbered_events_sql(source: str) -> str:
    """The rows of ``source`` (page events with at least site_id, visitor_id, timestamp,
    event_type and event_id) but app updates, with ``visit_number``: the visitor's run of
    activity they belong to, counted from 1 in time order (0 for engagement before any
    activity)."""
    return f"""
        SELECT *, sum(opens_run) OVER (
            {_TIMELINE} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS visit_number
        FROM (
            SELECT *, toUInt64(
                {IS_ACTIVITY} AND (previous_activity_ms = 0
                    OR toUnixTimestamp64Milli(timestamp) - previous_activity_ms > {_GAP_MS})
            ) AS opens_run
            FROM (
                SELECT *, max(if({IS_ACTIVITY}, toUnixTimestamp64Milli(timestamp), 0)) OVER (
                    {_TIMELINE} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
                ) AS previous_activity_ms
                FROM ({source}) WHERE {NOT_AN_UPDATE}
            )
        )
    """  # noqa: S608 (source is SQL made by the callers; values are parameters)


# A visit's id from its site, visitor and start (the first activity of its run).
VISIT_ID = "lower(hex(sipHash64(site_id, visitor_id, toUnixTimestamp64Milli(started_at))))"


def visit_events_sql(source: str) -> str:
    """The rows of ``source`` with ``visit_id``: the id of the visit they belong to, or '' for
    events of no visit (a run without a pageview)."""
    run = "PARTITION BY site_id, visitor_id, visit_number"
    return f"""
        SELECT * EXCEPT (started_at, run_pageviews),
               if(visit_number > 0 AND run_pageviews > 0, {VISIT_ID}, '') AS visit_id
        FROM (
            SELECT *, min(timestamp) OVER ({run}) AS started_at,
                   countIf(event_type = 'pageview') OVER ({run}) AS run_pageviews
            FROM ({numbered_events_sql(source)})
        )
    """  # noqa: S608


PAGE_EVENT_VISITS_VIEW_SQL = f"""
    CREATE OR REPLACE VIEW page_event_visits AS
    {visit_events_sql("SELECT * FROM page_events")}
"""  # noqa: S608 (fixed SQL)
