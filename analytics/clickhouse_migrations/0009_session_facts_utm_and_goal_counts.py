"""The session facts get the visit's ``utm_term`` and ``utm_content`` (its first pageview's),
so that reports filter and break down by them, and ``goal_events`` (how many times each of its
``goals`` happened, so that the goals report reads the facts alone); they are rebuilt in full
by the next refresh: forgetting the refreshes makes every day "changed", and reports compute
every visit live meanwhile (as 0005 did)."""

OPERATIONS = [
    "ALTER TABLE session_facts ADD COLUMN IF NOT EXISTS utm_term String AFTER utm_campaign",
    "ALTER TABLE session_facts ADD COLUMN IF NOT EXISTS utm_content String AFTER utm_term",
    "ALTER TABLE session_facts ADD COLUMN IF NOT EXISTS goal_events Array(UInt32) AFTER goals",
    "TRUNCATE TABLE IF EXISTS session_facts_refreshes",
]
