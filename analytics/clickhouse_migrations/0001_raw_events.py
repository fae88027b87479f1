"""Raw page events and ad events, as produced by ingestion (one row per event).

ORDER BY starts with site and day so every report reads one site's range; event_id closes the
key so ReplacingMergeTree folds a row that a client sent twice into one at merge time.
kafka_topic, kafka_partition and kafka_offset record where the drain read a row, written in
the same insert, which is how the drain resumes without inserting twice (see ingest.drain).
Rows expire after their site's retention, carried on each row so one table serves sites with
different ones.
"""

OPERATIONS = [
    """
    CREATE TABLE IF NOT EXISTS page_events
    (
        event_id UUID,
        site_id LowCardinality(String),
        timestamp DateTime64(3, 'UTC'),
        received_at DateTime64(3, 'UTC'),
        event_type LowCardinality(String),
        event_name LowCardinality(String),
        visitor_id String,
        session_id String,
        consent_state LowCardinality(String),
        app_id LowCardinality(String),
        hostname LowCardinality(String),
        pathname String,
        url String,
        referrer String,
        referrer_source LowCardinality(String),
        referrer_medium LowCardinality(String),
        utm_source LowCardinality(String),
        utm_medium LowCardinality(String),
        utm_campaign LowCardinality(String),
        utm_term String,
        utm_content String,
        country LowCardinality(String),
        region LowCardinality(String),
        browser LowCardinality(String),
        browser_version LowCardinality(String),
        os LowCardinality(String),
        os_version LowCardinality(String),
        device_type LowCardinality(String),
        is_bot UInt8,
        visible_ms UInt32,
        scroll_depth UInt8,
        target String,
        properties Map(String, String),
        retention_days UInt16,
        kafka_topic LowCardinality(String),
        kafka_partition Int32 DEFAULT -1,
        kafka_offset Int64 DEFAULT -1
    )
    ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(timestamp)
    ORDER BY (site_id, toDate(timestamp), event_type, event_id)
    TTL toDateTime(timestamp) + toIntervalDay(retention_days)
    """,
    """
    CREATE TABLE IF NOT EXISTS ad_events
    (
        event_id UUID,
        impression_id String,
        site_id LowCardinality(String),
        timestamp DateTime64(3, 'UTC'),
        received_at DateTime64(3, 'UTC'),
        event_type LowCardinality(String),
        visitor_id String,
        consent_state LowCardinality(String),
        app_id LowCardinality(String),
        campaign_id UInt64,
        ad_id UInt64,
        placement_id UInt64,
        creative_type LowCardinality(String),
        pathname String,
        country LowCardinality(String),
        region LowCardinality(String),
        device_type LowCardinality(String),
        is_bot UInt8,
        retention_days UInt16,
        kafka_topic LowCardinality(String),
        kafka_partition Int32 DEFAULT -1,
        kafka_offset Int64 DEFAULT -1
    )
    ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(timestamp)
    ORDER BY (site_id, toDate(timestamp), event_type, event_id)
    TTL toDateTime(timestamp) + toIntervalDay(retention_days)
    """,
]
