"""The Kafka topics of ingestion, created on first use by producers and the drain."""

from __future__ import annotations

import threading

from naboria import kafka_client

PAGE = "page"
AD = "ad"
DEAD_LETTER = "dead-letter"

_ensured = threading.Event()


def ensure_ingest_topics() -> None:
    """Create the page, ad and dead-letter topics if missing (once per process)."""
    if not _ensured.is_set():
        kafka_client.ensure_topics(
            [kafka_client.topic_name(kind) for kind in (PAGE, AD, DEAD_LETTER)]
        )
        _ensured.set()
