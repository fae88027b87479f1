"""Writes of event rows into ClickHouse, shared by the drain and the direct path: each row
once (events.dedup), inserted as its JSON encoding (events.rows) in JSONEachRow, so ClickHouse
parses it in C++ and Python never rebuilds it column by column.

Entry points: store_new_rows, insert_rows.
"""

from __future__ import annotations

from collections.abc import Sequence

from events import dedup
from events.dedup import EventKey
from events.tables import RAW_TABLES
from naboria import clickhouse


def _table(name: str) -> str:
    if name not in RAW_TABLES:
        raise ValueError(f"not an event table: {name!r}")
    return name


def insert_rows(table: str, encoded_rows: Sequence[bytes]) -> None:
    """Insert rows as they are (callers that made their event ids themselves, or that have
    deduplicated them)."""
    if not encoded_rows:
        return
    clickhouse.get_client().raw_insert(
        _table(table), None, b"\n".join(encoded_rows), fmt="JSONEachRow"
    )


def store_new_rows(table: str, encoded_rows: Sequence[bytes], keys: Sequence[EventKey]) -> int:
    """Insert the rows whose event is not stored yet (``keys[i]`` is the key of
    ``encoded_rows[i]``); how many were inserted. Safe to call again with the same rows after
    a failure, once events.dedup.repair_window has run: what did get stored is then skipped."""
    keep = dedup.new_rows(_table(table), keys)
    insert_rows(table, [encoded_rows[index] for index in keep])
    return len(keep)
