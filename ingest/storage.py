"""Writes of event rows into ClickHouse, shared by the drain and the direct path: each row
once (events.dedup), inserted as its JSON encoding (events.rows) in JSONEachRow, so ClickHouse
parses it in C++ and Python never rebuilds it column by column.

Entry points: store_new_rows, insert_rows, classify_failure (whether a failed insert is worth
retrying or refuses its rows).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence

from prometheus_client import Histogram

from events import dedup
from events.dedup import EventKey
from events.tables import RAW_TABLES
from naboria import clickhouse

INSERT_SECONDS = Histogram(
    "naboria_clickhouse_insert_seconds",
    "Duration of one insert of event rows into ClickHouse (drain or direct path), failed "
    "ones included, by table.",
    ["table"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def _table(name: str) -> str:
    if name not in RAW_TABLES:
        raise ValueError(f"not an event table: {name!r}")
    return name


def insert_rows(table: str, encoded_rows: Sequence[bytes]) -> None:
    """Insert rows as they are (callers that made their event ids themselves, or that have
    deduplicated them)."""
    if not encoded_rows:
        return
    with INSERT_SECONDS.labels(_table(table)).time():
        clickhouse.get_client().raw_insert(table, None, b"\n".join(encoded_rows), fmt="JSONEachRow")


def store_new_rows(table: str, encoded_rows: Sequence[bytes], keys: Sequence[EventKey]) -> int:
    """Insert the rows whose event is not stored yet (``keys[i]`` is the key of
    ``encoded_rows[i]``); how many were inserted. Safe to call again with the same rows after
    a failure, once events.dedup.repair_window has run: what did get stored is then skipped."""
    keep = dedup.new_rows(_table(table), keys)
    insert_rows(table, [encoded_rows[index] for index in keep])
    return len(keep)


class Failure(enum.Enum):
    """What a failed insert says about its rows."""

    TRANSIENT = "transient"  # ClickHouse (or the way to it) is not able now: insert them later
    POISON = "poison"  # ClickHouse cannot read some of the rows: find them, never retry them
    UNKNOWN = "unknown"  # neither is known: the caller retries a few times, then finds them


# ClickHouse's error codes (src/Common/ErrorCodes.cpp; tests/unit/test_insert_failures.py checks
# each name and code against the engine's system.errors). Transient: what the server, its
# replication or the way to it goes through and comes out of, and what a migration or an
# operator changes, never what the rows hold: retried the batch as a whole, however long it
# takes, because dead-lettering good rows for it would lose them from every report.
TRANSIENT_ERRORS = {
    # Timeouts and the network between the drain and the server (or between servers).
    "TIMEOUT_EXCEEDED": 159,
    "SOCKET_TIMEOUT": 209,
    "NETWORK_ERROR": 210,
    "CANNOT_READ_FROM_SOCKET": 95,
    "CANNOT_WRITE_TO_SOCKET": 96,
    "NO_FREE_CONNECTION": 203,
    "ALL_CONNECTION_TRIES_FAILED": 279,
    "TCP_CONNECTION_LIMIT_REACHED": 749,
    "HTTP_CONNECTION_LIMIT_REACHED": 762,
    # Load: merges behind inserts, memory, concurrency, disk.
    "TOO_MANY_PARTS": 252,
    "MEMORY_LIMIT_EXCEEDED": 241,
    "CANNOT_ALLOCATE_MEMORY": 173,
    "MEMORY_RESERVATION_KILLED": 777,
    "MEMORY_RESERVATION_FAILED": 778,
    "MEMORY_RESERVATION_ACQUISITION_TIMEOUT": 1020,
    "TOO_MANY_SIMULTANEOUS_QUERIES": 202,
    "QUERY_SLOT_ACQUISITION_TIMEOUT": 1019,
    "USER_SESSION_LIMIT_EXCEEDED": 700,
    "SERVER_OVERLOADED": 745,
    "RECEIVED_ERROR_TOO_MANY_REQUESTS": 364,
    "CANNOT_SCHEDULE_TASK": 439,
    "NOT_ENOUGH_SPACE": 243,
    "SYSTEM_ERROR": 425,
    "DEADLOCK_AVOIDED": 473,
    "SESSION_IS_LOCKED": 373,
    "PART_IS_TEMPORARILY_LOCKED": 384,
    "ABORTED": 236,
    "QUERY_WAS_CANCELLED": 394,
    "DISTRIBUTED_TOO_MANY_PENDING_BYTES": 574,
    "TOO_MANY_UNAVAILABLE_SHARDS": 904,
    # Read-only tables, Keeper and replicas (a replica that lost Keeper turns read-only).
    "READONLY": 164,
    "TABLE_IS_READ_ONLY": 242,
    "NO_ZOOKEEPER": 225,
    "UNEXPECTED_ZOOKEEPER_ERROR": 244,
    "KEEPER_EXCEPTION": 999,
    "NO_ACTIVE_REPLICAS": 254,
    "NO_AVAILABLE_REPLICA": 265,
    "TOO_FEW_LIVE_REPLICAS": 285,
    "UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE": 286,
    "REPLICA_IS_NOT_IN_QUORUM": 289,
    "ALL_REPLICAS_ARE_STALE": 369,
    "ALL_REPLICAS_LOST": 415,
    "REPLICA_STATUS_CHANGED": 416,
    "DATABASE_REPLICATION_FAILED": 571,
    # The insert may have happened: retried after the window's repair, like a lost answer.
    "UNKNOWN_STATUS_OF_INSERT": 319,
    # A migration under way (a table renamed, dropped and made again).
    "UNKNOWN_TABLE": 60,
    "UNKNOWN_DATABASE": 81,
    "TABLE_IS_DROPPED": 218,
    # Credentials and grants: an operator's to fix, and the events wait in Kafka meanwhile.
    "AUTHENTICATION_FAILED": 516,
    "UNKNOWN_USER": 192,
    "REQUIRED_PASSWORD": 194,
    "ACCESS_DENIED": 497,
    "DATABASE_ACCESS_DENIED": 291,
}

# Poison: ClickHouse cannot read or keep what a row holds (its JSONEachRow text, a value for
# its column's type, a constraint); the same row is refused however often it is sent.
POISON_ERRORS = {
    "CANNOT_PARSE_TEXT": 6,
    "CANNOT_PARSE_ESCAPE_SEQUENCE": 25,
    "CANNOT_PARSE_QUOTED_STRING": 26,
    "CANNOT_PARSE_INPUT_ASSERTION_FAILED": 27,
    "CANNOT_PARSE_DATE": 38,
    "CANNOT_PARSE_DATETIME": 41,
    "CANNOT_PARSE_NUMBER": 72,
    "CANNOT_PARSE_UUID": 376,
    "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING": 441,
    "CANNOT_PARSE_BOOL": 467,
    "CANNOT_PARSE_IPV4": 675,
    "CANNOT_PARSE_IPV6": 676,
    "CANNOT_READ_ARRAY_FROM_TEXT": 130,
    "CANNOT_READ_MAP_FROM_TEXT": 563,
    "UNEXPECTED_DATA_AFTER_PARSED_VALUE": 632,
    "ILLEGAL_SYNTAX_FOR_DATA_TYPE": 377,
    "INCORRECT_DATA": 117,
    "TYPE_MISMATCH": 53,
    "CANNOT_CONVERT_TYPE": 70,
    "CANNOT_CONVERT_CHARSET": 346,
    "CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN": 349,
    "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE": 321,
    "ARGUMENT_OUT_OF_BOUND": 69,
    "DECIMAL_OVERFLOW": 407,
    "TOO_LARGE_STRING_SIZE": 131,
    "TOO_LARGE_ARRAY_SIZE": 128,
    "UNKNOWN_ELEMENT_OF_ENUM": 691,
    "VIOLATED_CONSTRAINT": 469,
}

_TRANSIENT_CODES = frozenset(TRANSIENT_ERRORS.values())
_POISON_CODES = frozenset(POISON_ERRORS.values())
# ClickHouse's own text of an error: "Code: 252. DB::Exception: ..."; over HTTP
# clickhouse-connect writes "Received ClickHouse exception, code: 252, ...".
_CODE_IN_TEXT = re.compile(r"\bcode:\s*(\d+)", re.IGNORECASE)


def error_code(error: BaseException) -> int | None:
    """ClickHouse's code of an error, if it carries one: clickhouse-connect's ``code`` (taken
    from the X-ClickHouse-Exception-Code header over HTTP, from the message by the chdb
    backend), else the ``Code: N`` of its text (chdb's own ChdbError, or an error wrapping
    one)."""
    code = getattr(error, "code", None)
    if isinstance(code, int):
        return code
    found = _CODE_IN_TEXT.search(str(error))
    return int(found.group(1)) if found else None


def _network_failure(error: BaseException) -> bool:
    """Whether an I/O error of the operating system (refused, reset, timed out) is in the
    error's chain: clickhouse-connect reports a failed HTTP request as an OperationalError
    without a code, caused by urllib3's error, caused by the socket's."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError | clickhouse.ClickHouseUnavailable):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def classify_failure(error: BaseException) -> Failure:
    """Whether a failed insert (or lookup) of event rows is worth retrying as it is
    (TRANSIENT), refuses rows for what they hold (POISON), or neither is known (UNKNOWN: a
    code in neither list, or no code and no network error, e.g. a driver's own error)."""
    code = error_code(error)
    if code in _TRANSIENT_CODES:
        return Failure.TRANSIENT
    if code in _POISON_CODES:
        return Failure.POISON
    if code is None and _network_failure(error):
        return Failure.TRANSIENT
    return Failure.UNKNOWN
