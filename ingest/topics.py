"""The Kafka topics of ingestion, created by producers and the drain with the configured
partitions (``KAFKA_TOPIC_PARTITIONS``), and created again when a broker lost them.

Producers never let the broker create a topic (``allow.auto.create.topics=false``, see
naboria.kafka_client): Tansu, like Kafka, would create it with its own default partition count.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from naboria import kafka_client

logger = logging.getLogger(__name__)

PAGE = "page"
AD = "ad"
DEAD_LETTER = "dead-letter"

# The topic names this process has seen exist (a process's names change only in tests, which
# switch KAFKA_TOPIC_PREFIX); a broker found without them takes them out again.
_ensured: set[str] = set()
_ensured_lock = threading.Lock()


def _names() -> list[str]:
    return [kafka_client.topic_name(kind) for kind in (PAGE, AD, DEAD_LETTER)]


def ensure_ingest_topics() -> bool:
    """Create the page, ad and dead-letter topics if missing (once per process, unless
    ``ingest_topics_missing`` found them gone since). A broker that does not answer is logged,
    not raised: producing then waits in the bounded buffer, and the next call tries again.
    True once the topics exist."""
    names = _names()
    if _ensured.issuperset(names):
        return True
    try:
        created = kafka_client.ensure_topics(names, timeout=2.0)
    except kafka_client.KafkaUnavailable as error:
        logger.warning("could not check or create Kafka topics %s: %s", names, error)
        return False
    if created:
        logger.info("created Kafka topics %s", created)
    with _ensured_lock:
        _ensured.update(names)
    return True


def topics_ensured() -> bool:
    return _ensured.issuperset(_names())


def ingest_topics_missing(client: Any) -> list[str]:
    """The ingestion topics the broker does not hold (it restarted without its state), asked
    through ``client``'s own connection (no client is built for it); empty when the broker
    does not answer. The next ``ensure_ingest_topics`` creates the missing ones."""
    names = _names()
    try:
        missing = kafka_client.missing_topics(names, client=client, timeout=1.0)
    except kafka_client.KafkaUnavailable:
        return []
    with _ensured_lock:
        known = _ensured.intersection(missing)
        _ensured.difference_update(missing)
    if known:
        logger.warning("Kafka topics %s are gone (a broker lost its state); creating them", missing)
    return missing
