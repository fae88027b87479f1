"""``page_events.city`` and ``ad_events.city``: the visitor's city, looked up from the IP at
ingestion (ingest/geo.py) like ``country`` and ``region`` (events.tables)."""

from events.tables import add_column_sql

OPERATIONS = [add_column_sql("page_events", "city"), add_column_sql("ad_events", "city")]
