"""The event model every app shares, below ``ingest``, ``ads`` and ``analytics``.

- ``events.schemas``: the tracking protocol's payloads (what clients send), with their limits;
- ``events.rows``: the rows of the raw tables (what ingest writes and Kafka carries);
- ``events.ids``: event ids made by the server;
- ``events.tables``: the raw tables' ClickHouse DDL, the one place that defines them;
- ``events.dedup``: deduplication by event id before rows are stored;
- ``events.visits``: the visit rule (which events make a visit), shared by every reader.

It imports nothing from the apps above it (an import contract in ``make test`` keeps it so).
"""
