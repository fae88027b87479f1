"""One real round trip through each backend the product uses, via the project's own clients."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from naboria import clickhouse, kafka_client, mongo
from sites.models import Site
from sites.services import site_create


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgres_round_trip(organization):
    assert connection.vendor == "postgresql"
    site = site_create(organization=organization, name="PG shop", allowed_domains=["pg.example"])
    assert Site.objects.get(public_id=site.public_id).allowed_domains == ["pg.example"]


@pytest.mark.redis
def test_redis_cache_and_channel_layer_round_trip():
    assert settings.CACHES["default"]["BACKEND"].endswith("RedisCache")
    key = f"round-trip-{uuid.uuid4()}"
    cache.set(key, {"n": 1}, timeout=30)
    assert cache.get(key) == {"n": 1}

    async def group_round_trip() -> dict:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add("round-trip", channel)
        await layer.group_send("round-trip", {"type": "hello", "value": key})
        message = await layer.receive(channel)
        await layer.group_discard("round-trip", channel)
        return message

    assert async_to_sync(group_round_trip)()["value"] == key


@pytest.mark.kafka
def test_kafka_topic_produce_and_consume_round_trip():
    topic = kafka_client.topic_name(f"round-trip-{uuid.uuid4().hex[:8]}")
    assert kafka_client.ensure_topics([topic]) == [topic]
    assert kafka_client.ensure_topics([topic]) == []  # idempotent

    delivered = []
    producer = kafka_client.get_producer()
    producer.produce(
        topic, key=b"site-1", value=b"payload", on_delivery=lambda e, m: delivered.append(e)
    )
    producer.flush(10)
    assert delivered == [None]

    consumer = kafka_client.build_consumer(group_id=f"round-trip-{uuid.uuid4().hex[:8]}")
    consumer.subscribe([topic])
    try:
        message = None
        for _ in range(40):
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                break
        assert message is not None
        assert message.error() is None
        assert (message.key(), message.value()) == (b"site-1", b"payload")
        consumer.commit(message=message, asynchronous=False)
    finally:
        consumer.close()


@pytest.mark.clickhouse
def test_clickhouse_insert_and_query_round_trip(clickhouse_schema):
    client = clickhouse.get_client()
    event_id = uuid.uuid4()
    now = datetime.now(UTC)
    client.insert(
        "page_events",
        [[event_id, "rt-site", now, now, "pageview", "/round-trip", 30]],
        column_names=[
            "event_id",
            "site_id",
            "timestamp",
            "received_at",
            "event_type",
            "pathname",
            "retention_days",
        ],
    )
    rows = client.query(
        "SELECT pathname FROM page_events WHERE event_id = {id:UUID}", parameters={"id": event_id}
    ).result_rows
    assert rows == [("/round-trip",)]


@pytest.mark.mongodb
def test_mongodb_document_round_trip():
    import mongoengine

    class RoundTrip(mongoengine.Document):
        meta = {"collection": "round_trip"}
        token = mongoengine.StringField(required=True)
        tags = mongoengine.ListField(mongoengine.StringField())

    db = mongo.connect()
    assert settings.MONGODB_URL.startswith("mongodb://")
    token = uuid.uuid4().hex
    RoundTrip(token=token, tags=["a", "b"]).save()
    assert RoundTrip.objects(token=token).get().tags == ["a", "b"]
    assert db.command("ping")["ok"] == 1
    RoundTrip.objects(token=token).delete()


@pytest.mark.kafka
def test_concurrent_creation_of_one_topic_succeeds_for_both_callers():
    topic = kafka_client.topic_name(f"race-{uuid.uuid4().hex[:8]}")
    outcomes: list[object] = []

    def create() -> None:
        try:
            outcomes.append(kafka_client.ensure_topics([topic]))
        except Exception as error:  # collected: the assertion below names it
            outcomes.append(error)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    created = [outcome for outcome in outcomes if isinstance(outcome, list)]
    assert len(created) == len(threads), outcomes  # nobody saw an error
    assert sum(len(names) for names in created) <= 1  # and it was created once
