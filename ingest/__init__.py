"""Tracking endpoints, validation, enrichment, Kafka produce and the drain to ClickHouse."""
