"""The engagement of a visit's pages lines up with its ``pages`` (visible time, reports and
scroll depth per viewed page, in the same order), so that the engagement report reads one pass
of arrays instead of aggregating pageviews and engagement apart and joining them by page (the
last report over its latency target, bench/RESULTS.md). The per-engagement arrays it replaces
go; the new ones are appended after the last column, in the order of
``analytics.session_facts.SESSION_COLUMNS`` (a refresh inserts its rows by position). Rebuilt
in full by the next refresh, as 0009: reports compute every visit live meanwhile."""

OPERATIONS = [
    *(
        f"ALTER TABLE session_facts DROP COLUMN IF EXISTS {column}"
        for column in ("engaged_pages", "engaged_ms", "engagement_reports", "scroll_depths")
    ),
    *(
        f"ALTER TABLE session_facts ADD COLUMN IF NOT EXISTS {column}"
        for column in (
            "page_engaged_ms Array(UInt64)",
            "page_engagement_reports Array(UInt32)",
            "page_scroll_depths Array(UInt64)",
        )
    ),
    "TRUNCATE TABLE IF EXISTS session_facts_refreshes",
]
