"""The Kafka topics of ingestion, created on first use by producers and the drain."""

from __future__ import annotations

import logging
import threading

from naboria import kafka_client

logger = logging.getLogger(__name__)

PAGE = "page"
AD = "ad"
DEAD_LETTER = "dead-letter"

_ensured = threading.Event()


def ensure_ingest_topics() -> bool:
    """Create the page, ad and dead-letter topics if missing (once per process). A broker that
    does not answer is logged, not raised: producing then waits in the bounded buffer, and the
    next call tries again. True once the topics exist."""
    if _ensured.is_set():
        return True
    names = [kafka_client.topic_name(kind) for kind in (PAGE, AD, DEAD_LETTER)]
    try:
        kafka_client.ensure_topics(names, timeout=2.0)
    except kafka_client.KafkaUnavailable as error:
        logger.warning("could not check or create Kafka topics %s: %s", names, error)
        return False
    _ensured.set()
    return True
