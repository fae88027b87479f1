"""Deduplication by event id, before rows are stored: every event is stored once.

An event is identified by (site, event id). The writer stage (a drain consumer, or the direct
path's writer) is the only place that stores events, and it keeps a batch's rows only when
their key is

1. the first of its kind in the batch (a batch holding the same id five times keeps one), and
2. not in ``event_id_window``, the ids stored in the last DEDUP_WINDOW_DAYS (a client's
   retry in any later batch, a Kafka batch delivered again after a crash between insert and
   commit, after a rebalance, or read again from the start of a recreated topic).

Ingestion refuses events older than the window, so a retry can never outlive its id.

The window is ordered by the time in each id (UUIDv7, events.ids), which is a function of the
id: a lookup asks for ``id_time >= the smallest id time in the batch``, which every id of the
batch satisfies, so the bound never hides a stored id; it only spares reading the window's
older part. A batch holding an id without a plausible time (another version, or a clock far
off) is looked up across the whole window.

``event_id_window`` is filled by materialized views on the raw tables, in the same INSERT as
the rows (events.tables). The one way for the two to part is a ClickHouse killed between
writing the rows and writing their ids (in the embedded profile, the process that holds
chdb); or an insert whose answer was lost. ``repair_window`` closes that gap: it records
again the ids of the rows inserted since the newest id recorded, and writers call it when they
start and before they retry an insert whose outcome they do not know.

Rows that pass are also unique across writers as long as one writer stores a site's events at
a time: Kafka is keyed by site, so a site's events are in one partition, read by one consumer
(the direct path runs in one process). Reports count plain rows (no FINAL), rollups are
rebuilt from them (analytics.session_facts), so no number counts an event twice.

Entry points: EventKey.of, EventKey.all_of, new_rows, repair_window (and LOOKUP_SQL with
lookup_parameters, for tests that look at its plan).
"""

from __future__ import annotations

import array
import time
from collections.abc import Collection, Sequence, Set
from typing import NamedTuple

from events.ids import id_millis
from events.rows import RowEssentials
from events.tables import EVENT_IDS_TTL_DAYS, RAW_TABLES
from naboria import clickhouse

# What canonical UUID text is made of, but its dashes.
_DROP_HEX_DIGITS = str.maketrans("", "", "0123456789abcdef")


def _all_canonical(event_ids: Sequence[str]) -> bool:
    """Whether every id is canonical UUID text (36 characters, lower-case hex, dashes at 8, 13,
    18 and 23, what EventKey.event_id holds): a few passes over the joined text, a tenth of
    the time of a regular expression per id."""
    count = len(event_ids)
    joined = ",".join(event_ids)
    return count == 0 or (
        len(joined) == 37 * count - 1
        and joined[36::37] == "," * (count - 1)
        and all(joined[dash::37] == "-" * count for dash in (8, 13, 18, 23))
        and joined.translate(_DROP_HEX_DIGITS) == ("----," * count)[:-1]
    )


class EventKey(NamedTuple):
    site_id: str
    event_id: str  # canonical lower-case text (str(uuid.UUID))

    @classmethod
    def of(cls, row: RowEssentials) -> EventKey:
        """The key of a decoded row; ValueError if its event id is not a UUID (the drain
        sends such a row to the dead-letter topic at once)."""
        event_id = row.event_id.lower()
        if len(event_id) != 36 or not _all_canonical([event_id]):
            raise ValueError(f"event_id is not a UUID: {row.event_id!r}")
        return cls(row.site_id, event_id)

    @classmethod
    def all_of(cls, rows: Sequence[RowEssentials]) -> list[EventKey]:
        """The keys of decoded rows, as ``of`` makes them, checked together (a batch's worth
        in a fraction of the time); ValueError if one of them is not a UUID."""
        event_ids = [row.event_id.lower() for row in rows]
        if not _all_canonical(event_ids):
            raise ValueError("an event_id is not a UUID")
        return [cls(row.site_id, event_id) for row, event_id in zip(rows, event_ids, strict=True)]


def _table(name: str) -> str:
    if name not in RAW_TABLES:
        raise ValueError(f"not a raw event table: {name!r}")
    return name


class _PackedIds:
    """A lookup's ids as one hex string of 16 bytes each, in the order ClickHouse keeps a UUID
    in memory (two 64-bit halves, each little-endian), which ``reinterpretAsUUID`` reads back
    without parsing: a lookup of 50,000 ids costs a third of an ``Array(UUID)`` parameter,
    whose text ClickHouse parses element by element (bench/RESULTS.md run 11). Passed as an
    object because clickhouse-connect escapes a ``str`` parameter character by character
    (~100 ms per 50,000 ids, GIL held) and sends any other value as ``str(value)``; hex digits
    need no escaping. Only canonical UUID text is let through."""

    def __init__(self, event_ids: Sequence[str]) -> None:
        if not _all_canonical(event_ids):
            raise ValueError("event ids must be canonical UUID text")
        halves = array.array("Q", bytes.fromhex("".join(event_ids).replace("-", "")))
        halves.byteswap()  # the text's big-endian halves -> little-endian
        self.text = halves.tobytes().hex()

    def __str__(self) -> str:
        return self.text


LOOKUP_SQL = (
    "SELECT site_id, toString(event_id) FROM event_id_window "
    "WHERE event_table = {table:String} "
    "AND id_time >= fromUnixTimestamp64Milli({oldest:Int64}, 'UTC') "
    "AND event_id IN (SELECT arrayJoin(arrayMap("
    "i -> reinterpretAsUUID(substring(packed, i * 16 + 1, 16)), range({count:UInt32}))) "
    "FROM (SELECT unhex({ids:String}) AS packed))"
)

# Id times outside these bounds around now are not used to narrow a lookup: ClickHouse reads
# the time of a version-7 id exactly only within DateTime64's range, and such a clock is off.
_PLAUSIBLE_PAST_MS = (EVENT_IDS_TTL_DAYS + 1) * 86_400_000
_PLAUSIBLE_FUTURE_MS = 86_400_000


def oldest_id_millis(event_ids: Sequence[str]) -> int:
    """The lower bound of a lookup of ``event_ids`` (canonical text) on ``id_time``, in Unix
    milliseconds: the smallest time in them, or 0 (the whole window) when one of them is not
    a version-7 id or has no plausible time."""
    if not event_ids or any(event_id[14] != "7" for event_id in event_ids):
        return 0
    # The canonical text of version-7 ids sorts as their times do (fixed-width hex first).
    oldest = id_millis(min(event_ids)) or 0
    newest = id_millis(max(event_ids)) or 0
    now = time.time_ns() // 1_000_000
    if oldest < now - _PLAUSIBLE_PAST_MS or newest > now + _PLAUSIBLE_FUTURE_MS:
        return 0
    return oldest


def lookup_parameters(table: str, event_ids: Sequence[str]) -> dict[str, object]:
    """The parameters of LOOKUP_SQL for ``event_ids`` (distinct canonical text) in ``table``."""
    return {
        "table": _table(table),
        "oldest": oldest_id_millis(event_ids),
        "ids": _PackedIds(event_ids),
        "count": len(event_ids),
    }


def stored_keys(table: str, keys: Collection[EventKey]) -> set[EventKey]:
    """The keys among ``keys`` whose event is already stored in ``table`` (within the window)."""
    if not keys:
        return set()
    event_ids = list({key.event_id for key in keys})
    found = clickhouse.get_client().query(
        LOOKUP_SQL, parameters=lookup_parameters(table, event_ids)
    )
    wanted = set(keys)
    return {key for key in (EventKey(*row) for row in found.result_rows) if key in wanted}


def new_rows(
    table: str, keys: Sequence[EventKey], *, in_flight: Set[EventKey] = frozenset()
) -> list[int]:
    """Indexes (in order) of the rows to store: the first row of each key that is neither
    stored nor ``in_flight`` (handed to an insert that may not have finished: a writer that
    looks up a batch while it inserts the one before)."""
    first: dict[EventKey, int] = {}
    for index, key in enumerate(keys):
        if key not in in_flight:
            first.setdefault(key, index)
    stored = stored_keys(table, first.keys())
    return [index for key, index in first.items() if key not in stored]


def repair_window(table: str) -> int:
    """Record the ids of ``table``'s rows inserted since the newest id recorded (minus a minute,
    for rows of the same second), so that an interrupted insert leaves no row unknown to
    deduplication; returns how many ids were written (most already known: harmless)."""
    client = clickhouse.get_client()
    since = client.command(
        # No id recorded yet (a new window): every row of the table.
        "SELECT if(count() = 0, toDateTime(0), max(inserted_at) - INTERVAL 1 MINUTE) "
        "FROM event_id_window "
        "WHERE event_table = {table:String}",
        parameters={"table": _table(table)},
    )
    summary = client.command(
        f"""
        INSERT INTO event_id_window (event_table, site_id, event_id, timestamp)
        SELECT {{table:String}}, site_id, event_id, toDateTime(timestamp) FROM {table}
        WHERE inserted_at >= {{since:DateTime('UTC')}}
        """,  # noqa: S608 (the table name is checked against RAW_TABLES)
        parameters={"table": table, "since": since},
    )
    return int(getattr(summary, "written_rows", 0) or 0)
