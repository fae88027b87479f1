"""Stored sources get the one spelling ingestion now gives them (ingest.referrers.
canonical_source): "google", "google.com" or "www.google.de" become "Google", no source
("", "direct", "(none)") becomes "Direct / None", any other source is lower-cased, in the raw
page events and in the session facts. One mutation per table rewrites that one column."""

from ingest.referrers import source_aliases


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _canonical_sql() -> str:
    """The SQL of canonical_source over ``referrer_source`` for the spellings it knows."""
    aliases = sorted(source_aliases().items())
    keys = ", ".join(_literal(alias) for alias, _ in aliases)
    names = ", ".join(_literal(source) for _, source in aliases)
    spelled = "lower(trimBoth(referrer_source))"
    return f"transform({spelled}, [{keys}], [{names}], {spelled})"


OPERATIONS = [
    f"ALTER TABLE {table} UPDATE referrer_source = {_canonical_sql()} WHERE 1"
    f" SETTINGS mutations_sync = 2"
    for table in ("page_events", "session_facts")
]
