"""The raw tables' ClickHouse DDL, in one place: ``page_events``, ``ad_events`` and the
``event_id_window`` that deduplication reads (events.dedup).

Migrations (analytics/clickhouse_migrations) only call what is defined here, and a test
compares these columns with the row structs of events.rows and with ``system.columns``.

- Raw tables are ordered by site and day so that every report reads one site's range; rows
  expire after their site's retention, carried on each row so one table serves sites with
  different ones. ``inserted_at`` (set by ClickHouse) tells the session-facts refresh which days
  changed and reports which visitors the facts do not hold yet; a minmax index keeps that look
  to a few granules.
- Each raw table feeds ``event_id_window`` through a materialized view: written by the same INSERT
  as the rows, so the window of stored ids is complete by construction (see events.dedup for
  the one gap, a process killed between the two writes, and how a writer repairs it).
- ReplacingMergeTree on the raw tables is a last line of defence only: deduplication happens
  before insert, so no report needs FINAL.
"""

from __future__ import annotations

from dataclasses import dataclass

# How long an event id is remembered: ingestion refuses events older than DEDUP_WINDOW_DAYS
# (events.schemas.MAX_EVENT_AGE), so a retry can never arrive after its id has expired.
DEDUP_WINDOW_DAYS = 7
# Ids are kept a day longer than the window: TTL deletes at merge time, never early, but a
# clock a few hours off between ingestion and ClickHouse must not open a gap.
EVENT_IDS_TTL_DAYS = DEDUP_WINDOW_DAYS + 1


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    # Filled by ClickHouse, never by a row: not part of the row structs.
    server_side: bool = False

    @property
    def definition(self) -> str:
        return f"{self.name} {self.type}"


PAGE_EVENT_COLUMNS = (
    Column("event_id", "UUID"),
    Column("site_id", "LowCardinality(String)"),
    Column("timestamp", "DateTime64(3, 'UTC')"),
    Column("received_at", "DateTime64(3, 'UTC')"),
    Column("event_type", "LowCardinality(String)"),
    Column("event_name", "LowCardinality(String)"),
    Column("visitor_id", "String"),
    Column("consent_state", "LowCardinality(String)"),
    Column("app_id", "LowCardinality(String)"),
    Column("hostname", "LowCardinality(String)"),
    Column("pathname", "String"),
    Column("url", "String"),
    Column("referrer", "String"),
    Column("referrer_source", "LowCardinality(String)"),
    Column("referrer_medium", "LowCardinality(String)"),
    Column("utm_source", "LowCardinality(String)"),
    Column("utm_medium", "LowCardinality(String)"),
    Column("utm_campaign", "LowCardinality(String)"),
    Column("utm_term", "String"),
    Column("utm_content", "String"),
    Column("country", "LowCardinality(String)"),
    Column("region", "LowCardinality(String)"),
    Column("city", "LowCardinality(String)"),
    Column("browser", "LowCardinality(String)"),
    Column("browser_version", "LowCardinality(String)"),
    Column("os", "LowCardinality(String)"),
    Column("os_version", "LowCardinality(String)"),
    Column("device_type", "LowCardinality(String)"),
    Column("is_bot", "UInt8"),
    Column("bot_reason", "LowCardinality(String)"),
    Column("visible_ms", "UInt32"),
    Column("scroll_depth", "UInt8"),
    Column("target", "String"),
    Column("properties", "Map(String, String)"),
    Column("retention_days", "UInt16"),
    Column("inserted_at", "DateTime('UTC') DEFAULT now()", server_side=True),
)

AD_EVENT_COLUMNS = (
    Column("event_id", "UUID"),
    Column("impression_id", "String"),
    Column("site_id", "LowCardinality(String)"),
    Column("timestamp", "DateTime64(3, 'UTC')"),
    Column("received_at", "DateTime64(3, 'UTC')"),
    Column("event_type", "LowCardinality(String)"),
    Column("visitor_id", "String"),
    Column("consent_state", "LowCardinality(String)"),
    Column("app_id", "LowCardinality(String)"),
    Column("campaign_id", "UInt64"),
    Column("ad_id", "UInt64"),
    Column("placement_id", "UInt64"),
    Column("creative_type", "LowCardinality(String)"),
    Column("pathname", "String"),
    Column("country", "LowCardinality(String)"),
    Column("region", "LowCardinality(String)"),
    Column("city", "LowCardinality(String)"),
    Column("device_type", "LowCardinality(String)"),
    Column("is_bot", "UInt8"),
    Column("bot_reason", "LowCardinality(String)"),
    Column("retention_days", "UInt16"),
    # A VAST player's error code (100-999; 900 = undefined), on "error" events only.
    Column("error_code", "UInt16"),
    Column("inserted_at", "DateTime('UTC') DEFAULT now()", server_side=True),
)

RAW_TABLES = {"page_events": PAGE_EVENT_COLUMNS, "ad_events": AD_EVENT_COLUMNS}


def raw_table_sql(name: str) -> str:
    columns = ",\n        ".join(column.definition for column in RAW_TABLES[name])
    return f"""
    CREATE TABLE IF NOT EXISTS {name}
    (
        {columns},
        INDEX inserted_at_range inserted_at TYPE minmax GRANULARITY 1
    )
    ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(timestamp)
    ORDER BY (site_id, toDate(timestamp), event_type, event_id)
    TTL toDateTime(timestamp) + toIntervalDay(retention_days)
    """


# Ordered by the time in the id (UUIDv7, events.ids): a batch of fresh ids is looked up in the
# window's recent end (``id_time >= the batch's oldest id time``) instead of all of it; ids
# of other versions have id_time 1970-01-01 and sort first. The id's time, not the event's:
# ClickHouse compares UUIDs by their second half first, so the id alone would not sort by time.
EVENT_ID_WINDOW_SQL = f"""
    CREATE TABLE IF NOT EXISTS event_id_window
    (
        event_table LowCardinality(String),
        site_id LowCardinality(String),
        event_id UUID,
        id_time DateTime64(3, 'UTC') MATERIALIZED UUIDv7ToDateTime(event_id, 'UTC'),
        timestamp DateTime('UTC'),
        inserted_at DateTime('UTC') DEFAULT now()
    )
    ENGINE = ReplacingMergeTree
    ORDER BY (event_table, id_time, event_id)
    TTL timestamp + toIntervalDay({EVENT_IDS_TTL_DAYS})
    SETTINGS index_granularity = 256
"""


def event_id_window_view_sql(table: str) -> str:
    """The materialized view that records the ids of every row inserted into ``table``."""
    return f"""
    CREATE MATERIALIZED VIEW IF NOT EXISTS {table}_id_window_mv TO event_id_window AS
    SELECT '{table}' AS event_table, site_id, event_id, toDateTime(timestamp) AS timestamp
    FROM {table}
    """  # noqa: S608 (table names come from RAW_TABLES)


def event_id_window_backfill_sql(table: str) -> str:
    """Record the ids of ``table``'s rows that are inside the window (ids recorded twice are
    harmless: lookups ask whether an id is there)."""
    return f"""
    INSERT INTO event_id_window (event_table, site_id, event_id, timestamp)
    SELECT '{table}', site_id, event_id, toDateTime(timestamp) FROM {table}
    WHERE timestamp >= now() - INTERVAL {EVENT_IDS_TTL_DAYS} DAY
    """  # noqa: S608 (table names come from RAW_TABLES)


def add_column_sql(table: str, name: str) -> str:
    """Add the column ``name`` of ``table`` as defined here, after the one before it."""
    columns = RAW_TABLES[table]
    index = next(i for i, column in enumerate(columns) if column.name == name)
    definition = columns[index].definition
    after = columns[index - 1].name
    return f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {definition} AFTER {after}"


def row_columns(table: str) -> list[str]:
    """The columns a row of ``table`` carries (what events.rows' structs must match)."""
    return [column.name for column in RAW_TABLES[table] if not column.server_side]
