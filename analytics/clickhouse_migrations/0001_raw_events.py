"""Raw page events and ad events, as produced by ingestion (one row per event).

The tables are defined in one place, events.tables; this migration creates them as defined
there now, and later migrations bring tables created by earlier versions up to it.
"""

from events.tables import raw_table_sql

OPERATIONS = [raw_table_sql("page_events"), raw_table_sql("ad_events")]
