"""Kafka access for the whole product; the only package that imports ``confluent_kafka``.

Kafka is optional: with ``KAFKA_BOOTSTRAP_SERVERS`` unset, ingestion takes the direct path to
ClickHouse and nothing here is ever built.

Entry points:
    is_enabled()                 whether a broker is configured
    topic_name(kind)             "page" -> "<KAFKA_TOPIC_PREFIX>page"
    get_producer()               the one producer of this process (acks=all, not idempotent,
                                 never auto-creating topics, compressed, not lingering), built on
                                 first use
    build_consumer(group_id=...) a consumer in a group with manual offset commits
    commit_offsets(consumer, ...) synchronous commit of the next offsets to read
    cached_high_watermarks(consumer, partitions) the partitions' ends as last fetched (for lag)
    committed_offsets(consumer, partitions, timeout=...) where the group stands (for lag)
    topic_id(name)               the broker's id of a topic (another id: it was created anew)
    OFFSET_BEGINNING             the offset that means "the start of the partition"
    ensure_topics(names)         creates missing topics with the configured partitions
    missing_topics(names, client=...) which of them the broker does not hold
    ping()                       raises ``KafkaUnavailable`` if no broker answers
    reset()                      flushes and forgets the producer (tests, shutdown)
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable
from typing import Any

from django.conf import settings

_lock = threading.Lock()
_producer: Any = None
_librdkafka_logger = logging.getLogger("naboria.kafka.librdkafka")


class KafkaUnavailable(Exception):
    """No broker answered within the timeout."""


def is_enabled() -> bool:
    return bool(settings.KAFKA_BOOTSTRAP_SERVERS)


def topic_name(kind: str) -> str:
    return f"{settings.KAFKA_TOPIC_PREFIX}{kind}"


def _common_config() -> dict[str, Any]:
    if not is_enabled():
        raise KafkaUnavailable("KAFKA_BOOTSTRAP_SERVERS is not set")
    # librdkafka's own log lines go through Python logging (levels, JSON format).
    return {"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS, "logger": _librdkafka_logger}


def get_producer() -> Any:
    global _producer
    if _producer is None:
        with _lock:
            if _producer is None:
                from confluent_kafka import Producer

                _producer = Producer(
                    {
                        **_common_config(),
                        # Not idempotent: after a broker restarted without its state, an
                        # idempotent producer stayed stuck (its producer id and sequence
                        # numbers are unknown to the new broker; measured: no delivery within
                        # 90 s, while a plain producer delivered 0.85 s after the topic was
                        # created again). Exactly once does not rest on it: every writer
                        # deduplicates rows by event id (events.dedup), so a retry that sends
                        # a message twice, or out of order, stores each event once.
                        "enable.idempotence": False,
                        "acks": "all",
                        # A missing topic is created by ingest.topics with the configured
                        # partitions; left to the broker, Tansu would create it with 4.
                        "allow.auto.create.topics": False,
                        "compression.type": "lz4",
                        # None: /collect and /ad-event answer only once their message is
                        # acknowledged, and page batches are already gathered per site
                        # while earlier messages are in flight (ingest.sinks). Waiting 1 ms
                        # more per round cut 1-event /collect with 32 connections from
                        # 11,400 to 8,100 req/s (bench/RESULTS.md run 18).
                        "linger.ms": 0,
                        "client.id": "naboria",
                        # The bounded buffer that holds page events while the broker is away;
                        # the page path refuses batches (503) before librdkafka fills it.
                        "queue.buffering.max.messages": settings.INGEST_BUFFER_EVENTS + 10_000,
                        # A page message not delivered by then comes back in its delivery
                        # report and is produced again (ingest.sinks), with fresh metadata.
                        "message.timeout.ms": 60_000,
                    }
                )
    return _producer


def build_consumer(*, group_id: str, **overrides: Any) -> Any:
    from confluent_kafka import Consumer

    return Consumer(
        {
            **_common_config(),
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # A group join takes half the session timeout; the 45 s default looks like a hang.
            "session.timeout.ms": 6000,
            **overrides,
        }
    )


def commit_offsets(consumer: Any, topic: str, next_offsets: dict[int, int]) -> None:
    """Commit, synchronously, the next offset to read for each partition of ``topic``."""
    from confluent_kafka import TopicPartition

    consumer.commit(
        offsets=[
            TopicPartition(topic, partition, offset) for partition, offset in next_offsets.items()
        ],
        asynchronous=False,
    )


def cached_high_watermarks(consumer: Any, partitions: Iterable[Any]) -> dict[int, int]:
    """The high watermark (the offset the next message will get) of each assigned partition as
    the consumer last saw it in a fetch response: no broker round trip, so a drain's loop can
    ask every second. Partitions not fetched from yet are left out."""
    marks: dict[int, int] = {}
    for partition in partitions:
        with contextlib.suppress(Exception):  # KafkaException: no cached value yet
            high = consumer.get_watermark_offsets(partition, cached=True)[1]
            if high >= 0:
                marks[partition.partition] = high
    return marks


def committed_offsets(
    consumer: Any, partitions: Iterable[Any], *, timeout: float
) -> dict[int, int]:
    """Where the group stands in each of ``partitions`` (broker round trips): its committed
    next offset, or for a partition it never committed, the partition's first offset still
    held, where a consumer of ours starts reading (``auto.offset.reset`` is earliest)."""
    standing = {}
    for partition in consumer.committed(list(partitions), timeout=timeout):
        if partition.offset >= 0:
            standing[partition.partition] = partition.offset
        else:
            low = consumer.get_watermark_offsets(partition, timeout=timeout, cached=False)[0]
            standing[partition.partition] = max(low, 0)
    return standing


# librdkafka's logical offset for "the first message still held" (confluent_kafka's
# OFFSET_BEGINNING), so callers need not import confluent_kafka.
OFFSET_BEGINNING = -2


def topic_id(name: str, *, timeout: float = 5.0, admin: Any = None) -> str | None:
    """The id the broker gave the topic (KIP-516), or None when it cannot tell (no such topic,
    a broker without topic ids, or none answering). ``admin``: a client of the caller's
    (admin_client()) for callers that ask often; otherwise one is made for the call."""
    from confluent_kafka import KafkaException, TopicCollection

    # "admin or ...": an admin client with nothing queued is falsy (it has a length), and a
    # client made inline is destroyed before its answer comes. Held here until then.
    client = admin if admin is not None else admin_client()
    try:
        futures = client.describe_topics(TopicCollection([name]), request_timeout=timeout)
        description = futures[name].result(timeout=timeout)
    except (KafkaException, TimeoutError):
        return None
    found = getattr(description, "topic_id", None)
    return str(found) if found is not None else None


def admin_client() -> Any:
    """A new Kafka admin client on the configured brokers."""
    from confluent_kafka.admin import AdminClient

    return AdminClient(_common_config())


def ensure_topics(names: Iterable[str], *, timeout: float = 10.0) -> list[str]:
    """Create the topics that do not exist yet; return the names that were created."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic

    admin = admin_client()
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as error:
        raise KafkaUnavailable(str(error.args[0])) from error
    missing = [name for name in names if name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                name,
                num_partitions=settings.KAFKA_TOPIC_PARTITIONS,
                replication_factor=settings.KAFKA_TOPIC_REPLICATION,
            )
            for name in missing
        ],
        operation_timeout=timeout,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
            created.append(name)
        except KafkaException as error:
            # Another process created it between our listing and our request: that is fine.
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise KafkaUnavailable(str(error.args[0])) from error
    return created


def missing_topics(names: Iterable[str], *, client: Any, timeout: float = 1.0) -> list[str]:
    """Which of ``names`` the broker does not hold, asked with ``client`` (a producer or an
    admin client already connected); a metadata request for every topic never creates one."""
    from confluent_kafka import KafkaException

    try:
        existing = set(client.list_topics(timeout=timeout).topics)
    except KafkaException as error:
        raise KafkaUnavailable(str(error.args[0])) from error
    return [name for name in names if name not in existing]


def ping(*, timeout: float = 2.0) -> None:
    from confluent_kafka import KafkaException

    try:
        admin_client().list_topics(timeout=timeout)
    except KafkaException as error:
        raise KafkaUnavailable(str(error.args[0])) from error


def reset() -> None:
    global _producer
    with _lock:
        if _producer is not None:
            _producer.flush(5)
        _producer = None
