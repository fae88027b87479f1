"""Consent decisions mirrored from PostgreSQL (consent.ConsentRecord) for consent-rate reports.

PostgreSQL keeps the proof of consent; this copy holds no visitor id, only what the rates
need. A record mirrored twice (a crash between the insert and marking it mirrored) has the same
record_id, which ReplacingMergeTree folds and reports count with uniqExact(record_id).
"""

OPERATIONS = [
    """
    CREATE TABLE IF NOT EXISTS consent_events
    (
        record_id UInt64,
        site_id LowCardinality(String),
        recorded_at DateTime64(3, 'UTC'),
        visitor_kind LowCardinality(String),
        granted Array(LowCardinality(String)),
        denied Array(LowCardinality(String)),
        banner_version UInt32,
        language LowCardinality(String),
        user_agent_family LowCardinality(String),
        country LowCardinality(String)
    )
    ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(recorded_at)
    ORDER BY (site_id, toDate(recorded_at), record_id)
    """,
]
