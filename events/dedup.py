"""Deduplication by event id, before rows are stored: every event is stored once.

An event is identified by (site, event id). The writer stage (a drain consumer, or the direct
path's writer) is the only place that stores events, and it keeps a batch's rows only when
their key is

1. the first of its kind in the batch (a batch holding the same id five times keeps one), and
2. not in ``event_ids``, the window of ids stored in the last DEDUP_WINDOW_DAYS (a client's
   retry in any later batch, a Kafka batch delivered again after a crash between insert and
   commit, after a rebalance, or read again from the start of a recreated topic).

Ingestion refuses events older than the window, so a retry can never outlive its id.

``event_ids`` is filled by materialized views on the raw tables, in the same INSERT as the rows
(events.tables). The one way for the two to part is a ClickHouse killed between writing the
rows and writing their ids (in the embedded profile, the process that holds chdb); or an
insert whose answer was lost. ``repair_window`` closes that gap: it records again the ids of
the rows inserted since the newest id recorded, and writers call it when they start and
before they retry an insert whose outcome they do not know.

Rows that pass are also unique across writers as long as one writer stores a site's events at
a time: Kafka is keyed by site, so a site's events are in one partition, read by one consumer
(the direct path runs in one process). Reports count plain rows (no FINAL), rollups are
rebuilt from them (analytics.session_facts), so no number counts an event twice.

Entry points: EventKey.of, new_rows, repair_window.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from events.rows import RowEssentials
from events.tables import RAW_TABLES
from naboria import clickhouse

# The canonical text of a UUID (what EventKey.event_id holds).
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class EventKey(NamedTuple):
    site_id: str
    event_id: str  # canonical lower-case text (str(uuid.UUID))

    @classmethod
    def of(cls, row: RowEssentials) -> EventKey:
        """The key of a decoded row; ValueError if its event id is not a UUID (the drain
        sends such a row to the dead-letter topic at once)."""
        event_id = row.event_id.lower()
        if not _CANONICAL_UUID.fullmatch(event_id):
            raise ValueError(f"event_id is not a UUID: {row.event_id!r}")
        return cls(row.site_id, event_id)


def _table(name: str) -> str:
    if name not in RAW_TABLES:
        raise ValueError(f"not a raw event table: {name!r}")
    return name


class _UuidArrayText:
    """An ``Array(UUID)`` query parameter already in ClickHouse's text form. clickhouse-connect
    formats a list of strings character by character (~3 µs per id, a third of a 10,000-row
    lookup, with the GIL held); it passes a value of a type it has no rule for as ``str(value)``.
    Only canonical UUIDs are accepted, so the text needs no escaping."""

    def __init__(self, event_ids: Sequence[str]) -> None:
        if not all(map(_CANONICAL_UUID.fullmatch, event_ids)):
            raise ValueError("event ids must be canonical UUID text")
        self.text = "[" + ",".join(f"'{event_id}'" for event_id in event_ids) + "]"

    def __str__(self) -> str:
        return self.text


def stored_keys(table: str, keys: Sequence[EventKey]) -> set[EventKey]:
    """The keys among ``keys`` whose event is already stored in ``table`` (within the window)."""
    if not keys:
        return set()
    found = clickhouse.get_client().query(
        "SELECT site_id, toString(event_id) FROM event_ids "
        "WHERE event_table = {table:String} AND event_id IN {ids:Array(UUID)}",
        parameters={
            "table": _table(table),
            "ids": _UuidArrayText(sorted({key.event_id for key in keys})),
        },
    )
    wanted = set(keys)
    return {key for key in (EventKey(*row) for row in found.result_rows) if key in wanted}


def new_rows(table: str, keys: Sequence[EventKey]) -> list[int]:
    """Indexes (in order) of the rows to store: the first row of each key that is not stored."""
    first: dict[EventKey, int] = {}
    for index, key in enumerate(keys):
        first.setdefault(key, index)
    stored = stored_keys(table, list(first))
    return [index for key, index in first.items() if key not in stored]


def repair_window(table: str) -> int:
    """Record the ids of ``table``'s rows inserted since the newest id recorded (minus a minute,
    for rows of the same second), so that an interrupted insert leaves no row unknown to
    deduplication; returns how many ids were written (most already known: harmless)."""
    client = clickhouse.get_client()
    since = client.command(
        # No id recorded yet (a new window): every row of the table.
        "SELECT if(count() = 0, toDateTime(0), max(inserted_at) - INTERVAL 1 MINUTE) "
        "FROM event_ids "
        "WHERE event_table = {table:String}",
        parameters={"table": _table(table)},
    )
    summary = client.command(
        f"""
        INSERT INTO event_ids (event_table, site_id, event_id, timestamp)
        SELECT {{table:String}}, site_id, event_id, toDateTime(timestamp) FROM {table}
        WHERE inserted_at >= {{since:DateTime('UTC')}}
        """,  # noqa: S608 (the table name is checked against RAW_TABLES)
        parameters={"table": table, "since": since},
    )
    return int(getattr(summary, "written_rows", 0) or 0)
