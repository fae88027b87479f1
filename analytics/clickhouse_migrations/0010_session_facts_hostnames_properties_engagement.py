"""The session facts get what the event-level filters and the engagement reports read, so that
they read one row per visit instead of numbering the raw events of a month into visits on each
request: the hostnames of the visit's pageviews, the (event, key, value) properties of its
custom events with how many times each was sent, the targets of its outbound links and
downloads with their clicks, and per page its engagement reports (visible time, how many,
scroll depth summed). Appended after the last column, in the order of
``analytics.session_facts.SESSION_COLUMNS`` (a refresh inserts its rows by position). Rebuilt
in full by the next refresh, as 0009: reports compute every visit live meanwhile."""

OPERATIONS = [
    f"ALTER TABLE session_facts ADD COLUMN IF NOT EXISTS {column}"
    for column in (
        "hostnames Array(LowCardinality(String))",
        "custom_properties Array(Tuple(String, String, String))",
        "custom_property_events Array(UInt32)",
        "outbound_targets Array(String)",
        "outbound_clicks Array(UInt32)",
        "download_targets Array(String)",
        "download_clicks Array(UInt32)",
        "engaged_pages Array(LowCardinality(String))",
        "engaged_ms Array(UInt64)",
        "engagement_reports Array(UInt32)",
        "scroll_depths Array(UInt64)",
    )
] + ["TRUNCATE TABLE IF EXISTS session_facts_refreshes"]
