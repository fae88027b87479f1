"""``ad_events.error_code``: the VAST error code of a player's error beacon (events.tables)."""

from events.tables import add_column_sql

OPERATIONS = [add_column_sql("ad_events", "error_code")]
