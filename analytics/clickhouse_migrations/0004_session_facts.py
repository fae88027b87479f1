"""Session facts: one row per visit, so session reports scan plain columns instead of
grouping raw events by session on every request.

``session_facts`` is rebuilt a day partition at a time by ``analytics.session_facts.refresh``
(a periodic job): days that received rows since the last refresh are computed again from
``page_events`` and swapped in with REPLACE PARTITION, so a refresh is idempotent and late
events (up to the 7 days ingestion accepts) land in their day. Each refresh logs in
``session_facts_refreshes`` the insert time it covers (``inserted_before``); reports read the
facts, except for visits with rows inserted since then, which they compute from raw events.

``inserted_at`` on page events tells a refresh which days changed, and a report which visits
the facts do not hold yet (event time says when a visit happened, not when its rows arrived).
"""

TIME = "DateTime64(3, 'UTC')"

OPERATIONS = [
    "ALTER TABLE page_events ADD COLUMN IF NOT EXISTS inserted_at DateTime('UTC') DEFAULT now()",
    # Rows stored before the column existed would otherwise read as inserted "now" forever.
    "ALTER TABLE page_events MATERIALIZE COLUMN inserted_at",
    # Reports look for rows inserted since the last refresh on every query: skip the rest.
    "ALTER TABLE page_events ADD INDEX IF NOT EXISTS inserted_at_range inserted_at "
    "TYPE minmax GRANULARITY 1",
    "ALTER TABLE page_events MATERIALIZE INDEX inserted_at_range",
    f"""
    CREATE TABLE IF NOT EXISTS session_facts
    (
        site_id LowCardinality(String),
        session_id String,
        visitor_hash UInt64,
        is_bot UInt8,
        started_at {TIME},
        ended_at {TIME},
        pageviews UInt32,
        custom_events UInt32,
        is_bounce UInt8,
        entry_page String,
        exit_page String,
        hostname LowCardinality(String),
        referrer_source LowCardinality(String),
        referrer_medium LowCardinality(String),
        utm_source LowCardinality(String),
        utm_medium LowCardinality(String),
        utm_campaign LowCardinality(String),
        country LowCardinality(String),
        region LowCardinality(String),
        device_type LowCardinality(String),
        browser LowCardinality(String),
        os LowCardinality(String),
        steps Array(LowCardinality(String)),
        pages Array(LowCardinality(String)),
        page_views Array(UInt32),
        retention_days UInt16
    )
    ENGINE = MergeTree
    PARTITION BY toDate(started_at)
    -- By visitor hash within a day: a report that samples visitors (a hash range) reads only
    -- their granules, and a visitor's visits lie together.
    ORDER BY (site_id, is_bot, visitor_hash, started_at)
    TTL toDateTime(started_at) + toIntervalDay(retention_days)
    """,
    f"""
    CREATE TABLE IF NOT EXISTS session_facts_refreshes
    (
        refreshed_at {TIME},
        inserted_before DateTime('UTC'),
        days_rebuilt UInt32
    )
    ENGINE = MergeTree
    ORDER BY refreshed_at
    TTL toDateTime(refreshed_at) + toIntervalDay(30)
    """,
]
