"""Writes of event rows into ClickHouse, shared by the drain and the direct path.

Rows arrive as their JSON encoding (see ingest.rows) and are inserted as JSONEachRow, so
ClickHouse parses them in C++ and Python never rebuilds them column by column.

Entry points: insert_rows(table, encoded_rows), max_kafka_offsets(table).
"""

from __future__ import annotations

from collections.abc import Sequence

from naboria import clickhouse


def insert_rows(table: str, encoded_rows: Sequence[bytes]) -> None:
    if not encoded_rows:
        return
    clickhouse.get_client().raw_insert(table, None, b"\n".join(encoded_rows), fmt="JSONEachRow")


def max_kafka_offsets(table: str) -> dict[int, int]:
    """The highest Kafka offset already stored per partition, read from the rows themselves.

    The drain writes each row's partition and offset in the same insert as its data, so this
    is exactly what reached ClickHouse, even if the drain died before committing to Kafka.
    Rows are recent (event time is clamped near arrival), so two months of partitions suffice.
    """
    rows = (
        clickhouse.get_client()
        .query(
            f"SELECT kafka_partition, max(kafka_offset) FROM {table} "  # noqa: S608 (table is ours)
            "WHERE kafka_partition >= 0 AND timestamp >= now() - INTERVAL 40 DAY "
            "GROUP BY kafka_partition"
        )
        .result_rows
    )
    return {int(partition): int(offset) for partition, offset in rows}


def open_sessions(table: str, partitions: list[int]) -> list[tuple[str, str, str, int]]:
    """Sessions still open (activity in the last 30 minutes) among rows of these partitions:
    (site_id, visitor_id, session_id, last activity in ms), to seed a drain's Sessionizer."""
    query = (
        "SELECT site_id, visitor_id, argMax(session_id, timestamp), "  # noqa: S608 (our table)
        f"toUnixTimestamp64Milli(max(timestamp)) FROM {table} "
        "WHERE timestamp >= now() - INTERVAL 31 MINUTE "
        "AND kafka_partition IN {partitions:Array(Int32)} GROUP BY site_id, visitor_id"
    )
    result = clickhouse.get_client().query(query, parameters={"partitions": partitions})
    return [
        (str(site), str(visitor), str(session), int(last_ms))
        for site, visitor, session, last_ms in result.result_rows
    ]
