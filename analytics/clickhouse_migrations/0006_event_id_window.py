"""The deduplication window ordered by the time in each id: ``event_id_window`` replaces
``event_ids`` (events.tables, events.dedup).

Re-runnable, and without a moment in which an insert's ids go unrecorded: the new window and
its views exist (and record every insert) before it is backfilled from the raw tables and the
old window and its views are dropped.
"""

from events.tables import (
    EVENT_ID_WINDOW_SQL,
    RAW_TABLES,
    event_id_window_backfill_sql,
    event_id_window_view_sql,
)

OPERATIONS = [
    EVENT_ID_WINDOW_SQL,
    *(event_id_window_view_sql(table) for table in RAW_TABLES),
    *(event_id_window_backfill_sql(table) for table in RAW_TABLES),
    *(f"DROP VIEW IF EXISTS {table}_ids_mv" for table in RAW_TABLES),
    "DROP TABLE IF EXISTS event_ids",
]
