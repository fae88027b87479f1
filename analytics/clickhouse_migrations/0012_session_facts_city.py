"""The session facts get the visit's ``city`` (its first event's, as ``country`` and
``region``), so that reports filter and break down by it. Appended after the last column, in
the order of ``analytics.session_facts.SESSION_COLUMNS`` (a refresh inserts its rows by
position); rebuilt in full by the next refresh, as 0009: reports compute every visit live
meanwhile."""

OPERATIONS = [
    "ALTER TABLE session_facts ADD COLUMN IF NOT EXISTS city LowCardinality(String)",
    "TRUNCATE TABLE IF EXISTS session_facts_refreshes",
]
