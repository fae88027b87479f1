"""Writes of event rows into ClickHouse, shared by the drain and the direct path, and the reads
the drain needs to resume (stored offsets, open sessions).

Rows arrive as their JSON encoding (see events.rows) and are inserted as JSONEachRow, so
ClickHouse parses them in C++ and Python never rebuilds them column by column.

Entry points: insert_rows, max_kafka_offsets, open_sessions.
"""

from __future__ import annotations

from collections.abc import Sequence

from naboria import clickhouse

# Tables the drain and the direct path write; names are interpolated into SQL only from here.
EVENT_TABLES = frozenset({"page_events", "ad_events"})


def _table(name: str) -> str:
    if name not in EVENT_TABLES:
        raise ValueError(f"not an event table: {name!r}")
    return name


def insert_rows(table: str, encoded_rows: Sequence[bytes]) -> None:
    if not encoded_rows:
        return
    clickhouse.get_client().raw_insert(
        _table(table), None, b"\n".join(encoded_rows), fmt="JSONEachRow"
    )


def max_kafka_offsets(table: str, topic: str) -> dict[int, int]:
    """The highest offset of ``topic`` already stored, per partition, read from the rows.

    The drain writes each row's topic, partition and offset in the same insert as its data, so
    this is exactly what reached ClickHouse, even if the drain died before committing to Kafka.
    Rows are recent (event time is clamped near arrival), so 40 days of partitions suffice.
    """
    query = (
        f"SELECT kafka_partition, max(kafka_offset) FROM {_table(table)} "  # noqa: S608
        "WHERE kafka_topic = {topic:String} AND kafka_partition >= 0 "
        "AND timestamp >= now() - INTERVAL 40 DAY GROUP BY kafka_partition"
    )
    result = clickhouse.get_client().query(query, parameters={"topic": topic})
    return {int(partition): int(offset) for partition, offset in result.result_rows}


def open_sessions(table: str, topic: str, partitions: list[int]) -> list[tuple[str, str, str, int]]:
    """Sessions still open (activity in the last 30 minutes) among rows of these partitions:
    (site_id, visitor_id, session_id, last activity in ms), to seed a drain's Sessionizer."""
    query = (
        "SELECT site_id, visitor_id, argMax(session_id, timestamp), "  # noqa: S608
        f"toUnixTimestamp64Milli(max(timestamp)) FROM {_table(table)} "
        "WHERE timestamp >= now() - INTERVAL 31 MINUTE AND kafka_topic = {topic:String} "
        "AND kafka_partition IN {partitions:Array(Int32)} GROUP BY site_id, visitor_id"
    )
    result = clickhouse.get_client().query(
        query, parameters={"topic": topic, "partitions": partitions}
    )
    return [
        (str(site), str(visitor), str(session), int(last_ms))
        for site, visitor, session, last_ms in result.result_rows
    ]
