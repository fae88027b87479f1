"""Every event stored once, and every number derived from the stored events.

- (The window of stored event ids that deduplication reads was created here first, as
  ``event_ids``; 0006 makes it ``event_id_window``, and fresh installations get only that.)
- Raw tables as events.tables defines them: ``bot_reason``; ``inserted_at`` on ad events too.
  Columns that the writer filled in order of arrival go: ``session_id`` (visits are now made by
  event time when read, events.visits) and the Kafka provenance of the old resume guard.
- The rollups filled by materialized views go (sessions, pageviews_hourly, sources_daily,
  ad_performance_hourly, visitor_profiles): reports read the deduplicated raw events and the
  session facts, which are rebuilt from them.
- ``page_event_visits``: every page event with its visit (events.visits), what dbt reads.
- The session facts get ``goals`` and are rebuilt in full by the next refresh: forgetting the
  refreshes makes every day "changed", and reports compute every visit live meanwhile.
"""

from events.tables import RAW_TABLES
from events.visits import PAGE_EVENT_VISITS_VIEW_SQL

_OLD_VIEWS = (
    "sessions_mv",
    "pageviews_hourly_mv",
    "sources_daily_mv",
    "ad_performance_hourly_mv",
    "visitor_profiles_pages_mv",
    "visitor_profiles_ads_mv",
)
_OLD_TABLES = (
    "sessions",
    "pageviews_hourly",
    "sources_daily",
    "ad_performance_hourly",
    "visitor_profiles",
)

OPERATIONS = [
    *(f"DROP VIEW IF EXISTS {name}" for name in _OLD_VIEWS),
    *(f"DROP TABLE IF EXISTS {name}" for name in _OLD_TABLES),
    "ALTER TABLE ad_events ADD COLUMN IF NOT EXISTS inserted_at DateTime('UTC') DEFAULT now()",
    "ALTER TABLE ad_events MATERIALIZE COLUMN inserted_at",
    "ALTER TABLE ad_events ADD INDEX IF NOT EXISTS inserted_at_range inserted_at "
    "TYPE minmax GRANULARITY 1",
    "ALTER TABLE ad_events MATERIALIZE INDEX inserted_at_range",
    *(
        f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS bot_reason LowCardinality(String) "
        "AFTER is_bot"
        for table in RAW_TABLES
    ),
    "ALTER TABLE page_events DROP COLUMN IF EXISTS session_id",
    *(
        f"ALTER TABLE {table} DROP COLUMN IF EXISTS {column}"
        for table in RAW_TABLES
        for column in ("kafka_topic", "kafka_partition", "kafka_offset")
    ),
    # Custom events of a visit, so that a goal filter reads the facts.
    "ALTER TABLE session_facts ADD COLUMN IF NOT EXISTS goals Array(LowCardinality(String)) "
    "AFTER page_views",
    "TRUNCATE TABLE IF EXISTS session_facts_refreshes",
    # The visit rule as a view, for readers of every event (the dbt marts).
    PAGE_EVENT_VISITS_VIEW_SQL,
]
