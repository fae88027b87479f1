"""ClickHouse schema and migrations, the analytics query layer, REST API, dashboards, ML."""
