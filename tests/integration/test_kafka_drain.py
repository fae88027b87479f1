"""The Kafka path against Tansu: produce at ingest, drain into ClickHouse, exactly once."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import msgspec
import pytest
from asgiref.sync import async_to_sync
from confluent_kafka import TopicPartition
from django.conf import settings
from django.test import override_settings
from prometheus_client import REGISTRY

from analytics import session_facts
from analytics.reports import app_releases
from analytics.reports.query import ReportQuery
from events.rows import PageRow, encoder
from ingest import sinks, topics
from ingest.drain import CONSUMERS, Drain, DrainRunner
from ingest.selectors import forget_site_configs
from ingest.sinks import KafkaSink, get_sink, reset_sink
from ingest.topics import DEAD_LETTER
from naboria import clickhouse, kafka_client
from scripts.test_services import free_port
from tests.integration.test_app_releases import APP, DEVICES, EXPECTED_ADOPTION
from tests.integration.test_app_releases import post as post_updates
from tests.integration.test_drain_errors import page_row
from tests.tracking_client import TrackingClient, delivered_ad_event

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.clickhouse,
    pytest.mark.django_db,
    pytest.mark.usefixtures("clickhouse_schema"),
]


@pytest.fixture(autouse=True)
def kafka_path():
    forget_site_configs()
    with override_settings(INGEST_BATCH_SECONDS=0.3):
        reset_sink()
        yield
        reset_sink()


def count(query: str, site: str) -> int:
    return int(clickhouse.get_client().query(query, parameters={"s": site}).result_rows[0][0])


def collect(site, n: int) -> None:
    events = [{"type": "pageview", "url": f"https://example.com/p{i}"} for i in range(n)]
    response = TrackingClient().post(
        "/collect", {"site": site.public_id, "events": events}, content_type="application/json"
    )
    assert response.status_code == 202, response.content
    sink = get_sink()
    assert isinstance(sink, KafkaSink)
    sink.flush(10)


def run_drain_until(drain: Drain, done, timeout: float = 30.0) -> None:
    thread = threading.Thread(target=drain.run)
    thread.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not done():
        time.sleep(0.2)
    drain.stop.set()
    thread.join(timeout=30)
    assert done(), "the drain did not get there in time"


PAGEVIEWS = "SELECT count() FROM page_events WHERE site_id = {s:String}"


def facts_pageviews(site_id: str) -> int:
    """Pageviews in the session facts, refreshed now: what reports count."""
    session_facts.refresh()
    return count("SELECT sum(pageviews) FROM session_facts WHERE site_id = {s:String}", site_id)


def messages_of(site_id: str) -> list[Any]:
    """The messages of the page topic keyed by this site."""
    topic = kafka_client.topic_name("page")
    reader = kafka_client.build_consumer(group_id=f"keys-{uuid.uuid4().hex}")
    reader.assign([TopicPartition(topic, partition, 0) for partition in range(6)])
    found = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for message in reader.consume(500, 0.5):
            if not message.error() and message.key() == site_id.encode():
                found.append(message)
    reader.close()
    return found


def partitions_holding(site_id: str) -> set[int]:
    """The partitions of the page topic whose messages are keyed by this site."""
    return {message.partition() for message in messages_of(site_id)}


def test_batches_accepted_together_travel_in_one_message_per_site(site, monkeypatch):
    """Batches that arrive while the produce thread is busy (here: held before it takes them)
    go out as one message, and their requests are answered together once Kafka acknowledged
    it."""
    sink = get_sink()
    assert isinstance(sink, KafkaSink)
    go = threading.Event()
    produce_pending = KafkaSink._produce_pending

    def held(self: KafkaSink) -> None:
        go.wait(10)
        produce_pending(self)

    monkeypatch.setattr(KafkaSink, "_produce_pending", held)
    rows = [
        encoder.encode(page_row(site.public_id, url=f"https://example.com/{n}", pathname=f"/{n}"))
        for n in range(6)
    ]
    acceptances = [sink.submit_page_rows(rows[n : n + 2], key=site.public_id) for n in (0, 2, 4)]
    assert len({id(acceptance) for acceptance in acceptances}) == 1

    async def answered() -> None:
        await asyncio.gather(*(acceptance.wait(timeout=10) for acceptance in acceptances))

    go.set()
    async_to_sync(answered)()
    (message,) = messages_of(site.public_id)
    assert len(message.value().split(b"\n")) == 6
    drain = Drain(CONSUMERS["page-events"], stop=threading.Event())
    run_drain_until(drain, lambda: count(PAGEVIEWS, site.public_id) == 6)


def test_coalesced_messages_stay_within_their_row_and_byte_limits():
    rows = [b"x" * 100] * 2500 + [b"y" * (sinks.MESSAGE_MAX_BYTES + 1)] + [b"z"] * 3
    chunks = sinks._message_chunks(rows)
    assert [len(chunk) for chunk in chunks] == [1000, 1000, 500, 1, 3]
    assert [row for chunk in chunks for row in chunk] == rows
    assert all(
        sum(len(row) + 1 for row in chunk) <= sinks.MESSAGE_MAX_BYTES for chunk in chunks[:3]
    )


def test_events_flow_through_kafka_into_clickhouse(site):
    assert isinstance(get_sink(), KafkaSink)
    for _ in range(5):
        collect(site, 5)  # five messages
    drain = Drain(CONSUMERS["page-events"], stop=threading.Event())
    run_drain_until(drain, lambda: count(PAGEVIEWS, site.public_id) == 25)
    assert facts_pageviews(site.public_id) == 25
    # Keyed by site: one partition holds the site's events, so one consumer stores them, in
    # order (what makes the deduplication check before insert sufficient).
    assert len(partitions_holding(site.public_id)) == 1


def test_a_backlog_is_drained_in_batches_that_grow_while_an_insert_runs(site, monkeypatch):
    """A due batch keeps filling while the writer is busy (up to DRAIN_MAX_BATCH_ROWS, which
    one read of at most CONSUME_AT_ONCE messages may pass), so a backlog makes few large
    inserts; every row is stored once all the same."""
    from ingest import drain as drain_module
    from ingest import sinks

    # Batches accepted together are coalesced into messages of at most MESSAGE_MAX_ROWS rows.
    monkeypatch.setattr(sinks, "MESSAGE_MAX_ROWS", 10)
    for _ in range(60):
        collect(site, 10)  # a backlog of 60 messages of 10 rows
    inserted: list[int] = []
    real_insert = drain_module.insert_rows

    def slow_insert(table, rows):
        inserted.append(len(rows))
        time.sleep(0.4)  # a slow ClickHouse: the consumer reads on meanwhile
        real_insert(table, rows)

    monkeypatch.setattr(drain_module, "insert_rows", slow_insert)
    monkeypatch.setattr(drain_module, "CONSUME_AT_ONCE", 5)
    with override_settings(INGEST_BATCH_SIZE=20, DRAIN_MAX_BATCH_ROWS=200):
        drain = Drain(CONSUMERS["page-events"], stop=threading.Event())
        run_drain_until(drain, lambda: count(PAGEVIEWS, site.public_id) == 600)
    assert sum(inserted) == 600
    assert max(inserted) > 20  # grew past INGEST_BATCH_SIZE while an insert ran
    assert max(inserted) <= 200 + 5 * 10
    assert len(inserted) < 600 // 20
    assert facts_pageviews(site.public_id) == 600


class CrashAfterInsert(Exception):
    pass


def test_drain_killed_between_insert_and_commit_does_not_count_twice(site, monkeypatch):
    collect(site, 40)
    crashing = Drain(CONSUMERS["page-events"], stop=threading.Event())

    def crash(messages):
        raise CrashAfterInsert

    monkeypatch.setattr(crashing, "_commit", crash)
    with pytest.raises(CrashAfterInsert):
        crashing.run()
    assert count(PAGEVIEWS, site.public_id) == 40  # inserted, never committed

    restarted = Drain(CONSUMERS["page-events"], stop=threading.Event())
    collect(site, 5)  # more arrive while it is down
    run_drain_until(restarted, lambda: count(PAGEVIEWS, site.public_id) >= 45)
    time.sleep(1.0)  # a re-read of the first 40 would show up by now
    assert count(PAGEVIEWS, site.public_id) == 45
    assert facts_pageviews(site.public_id) == 45  # nor do the reports count them twice


def test_poison_messages_go_to_the_dead_letter_topic(site):
    producer = kafka_client.get_producer()
    page_topic = kafka_client.topic_name("page")
    marker = uuid.uuid4().hex
    bad_time = PageRow(
        event_id=str(uuid.uuid4()),
        site_id=site.public_id,
        timestamp="yyyy-mm-dd hh:mm:ss.fff",
        received_at="2026-11-22 10:00:00.000",
        event_type="pageview",
        visitor_id=marker,
        consent_state="none",
        pathname="/",
        url="https://example.com/",
        retention_days=30,
    )
    no_uuid = msgspec.structs.replace(bad_time, event_id="z" * 36, timestamp=bad_time.received_at)
    poison = [f'{{"poison": "{marker}"}}'.encode(), encoder.encode(bad_time)]
    for value in poison:
        producer.produce(page_topic, key=site.public_id.encode(), value=value)
    # Among valid rows of the same message: only the row without a UUID is refused.
    valid = encoder.encode(msgspec.structs.replace(no_uuid, event_id=str(uuid.uuid4())))
    producer.produce(
        page_topic, key=site.public_id.encode(), value=b"\n".join([valid, encoder.encode(no_uuid)])
    )
    poison.append(encoder.encode(no_uuid))
    producer.flush(10)
    collect(site, 3)

    drain = Drain(CONSUMERS["page-events"], stop=threading.Event())
    run_drain_until(drain, lambda: count(PAGEVIEWS, site.public_id) == 4)
    # Read by assignment, once the drain has made the topic: a subscription made before the
    # topic exists would wait for the next metadata refresh (minutes).
    dead = kafka_client.build_consumer(group_id=f"dlq-{marker}")
    dead_topic = kafka_client.topic_name(DEAD_LETTER)
    dead.assign(
        [
            TopicPartition(dead_topic, partition, kafka_client.OFFSET_BEGINNING)
            for partition in range(6)
        ]
    )
    found: list[Any] = []
    deadline = time.monotonic() + 20
    while len(found) < len(poison) and time.monotonic() < deadline:
        message = dead.poll(0.5)
        if message is not None and not message.error() and marker.encode() in message.value():
            found.append(message)
    dead.close()
    assert sorted(message.value() for message in found) == sorted(poison)
    errors = {message.value(): dict(message.headers())["error"] for message in found}
    # Not a row at all: refused by the drain; a time ClickHouse cannot read: refused by it.
    assert errors[poison[0]].startswith(b"invalid row")
    assert errors[poison[1]].startswith(b"refused by ClickHouse")
    assert errors[poison[2]].startswith(b"invalid row: event_id is not a UUID")
    assert {dict(message.headers())["source-topic"] for message in found} == {page_topic.encode()}


def test_ad_event_is_acknowledged_by_kafka_before_the_answer(site):
    impression = f"imp-{uuid.uuid4().hex[:8]}"
    body = delivered_ad_event(site=site.public_id, impression=impression, ad=2)
    response = TrackingClient().post("/ad-event", body, content_type="application/json")
    assert response.status_code == 200
    assert response.json()["stored"] is True
    # Acknowledged means already in the topic: a fresh consumer finds it without any flush.
    reader = kafka_client.build_consumer(group_id=f"check-{impression}")
    reader.subscribe([kafka_client.topic_name("ad")])
    found = False
    deadline = time.monotonic() + 20
    while not found and time.monotonic() < deadline:
        message = reader.poll(0.5)
        found = (
            message is not None and not message.error() and impression.encode() in message.value()
        )
    reader.close()
    assert found


def test_unreachable_broker_gives_503_with_retry_after(site):
    with override_settings(
        KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}", INGEST_ACK_TIMEOUT_SECONDS=1.0
    ):
        kafka_client.reset()
        reset_sink()
        try:
            body = delivered_ad_event(site=site.public_id, impression="i1")
            response = TrackingClient().post("/ad-event", body, content_type="application/json")
            assert response.status_code == 503
            assert response["Retry-After"] == "5"
        finally:
            reset_sink()
            kafka_client.reset()


def test_full_buffer_refuses_the_whole_batch_with_503(site, tmp_path):
    # A spool of its own: the accepted batch is spooled when the sink closes, and a shared
    # spool would hand it to the next test's sink.
    with override_settings(
        KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}",
        INGEST_BUFFER_EVENTS=100,
        INGEST_SPOOL_DIR=tmp_path,
        INGEST_ACK_TIMEOUT_SECONDS=0.5,
    ):
        kafka_client.reset()
        reset_sink()
        try:
            events = [{"type": "pageview", "url": "https://example.com/"}] * 60
            body = {"site": site.public_id, "events": events}
            first = TrackingClient().post("/collect", body, content_type="application/json")
            second = TrackingClient().post("/collect", body, content_type="application/json")
            # No broker acknowledges the first: not promised stored (503), yet kept and retried.
            assert first.status_code == 503
            assert "not stored yet" in first.json()["error"]
            assert second.status_code == 503
            assert "buffer full" in second.json()["error"]
            # The first batch waits; nothing of the refused one was queued. (len(producer)
            # would also count librdkafka's own requests to the unreachable broker.)
            assert sink_buffered_events() == 60
        finally:
            kafka_client.get_producer().purge()
            reset_sink()
            kafka_client.reset()
        # Taken, never delivered: spooled when the sink closed, not dropped.
        spooled = [line for file in tmp_path.glob("page-*.jsonl") for line in file.open()]
        assert len(spooled) == 60


def test_stopping_the_drain_inserts_and_commits_the_partial_batch(site):
    """What SIGTERM does (manage.py drain sets the same stop event): the batch in hand is
    inserted and committed even though it is neither full nor old."""
    collect(site, 7)
    with override_settings(INGEST_BATCH_SECONDS=120.0):
        runner = DrainRunner(["page-events"])
        runner.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _consumed_by(runner):
            time.sleep(0.1)
        assert count(PAGEVIEWS, site.public_id) == 0  # still waiting in the batch
        runner.stop()
    assert count(PAGEVIEWS, site.public_id) == 7
    group = f"{settings.DRAIN_GROUP_ID}.page-events"
    consumer = kafka_client.build_consumer(group_id=group)
    committed = consumer.committed(
        [TopicPartition(kafka_client.topic_name("page"), partition) for partition in range(6)],
        timeout=10,
    )
    consumer.close()
    assert max(partition.offset for partition in committed) > 0


def _consumed_by(runner: DrainRunner) -> bool:
    # The drain has read the messages once its consumer holds a position past them.
    return any(drain.pending for drain in runner.drains)


def test_celery_worker_bootstep_hosts_the_drain(site):
    from naboria.celery import DrainStep

    collect(site, 4)
    step = DrainStep(worker=None)
    step.start(worker=None)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and count(PAGEVIEWS, site.public_id) < 4:
            time.sleep(0.2)
    finally:
        step.stop(worker=None)
    assert count(PAGEVIEWS, site.public_id) == 4


def sink_buffered_events() -> float:
    time.sleep(0.3)  # the producer's poll thread publishes the gauge every 0.1 s
    return REGISTRY.get_sample_value("naboria_ingest_buffered_events") or 0.0


def test_the_sink_creates_topics_off_the_request_thread(monkeypatch):
    prefix = f"sink-{uuid.uuid4().hex[:6]}."
    callers: list[str] = []
    real_ensure = sinks.ensure_ingest_topics

    def recording_ensure() -> bool:
        callers.append(threading.current_thread().name)
        return real_ensure()

    monkeypatch.setattr(sinks, "ensure_ingest_topics", recording_ensure)
    monkeypatch.setattr(topics, "_ensured", set())
    with override_settings(KAFKA_TOPIC_PREFIX=prefix):
        reset_sink()
        get_sink()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not topics.topics_ensured():
            time.sleep(0.1)
        reset_sink()
    assert callers
    assert set(callers) == {"kafka-poll"}  # never the thread that built the sink
    # Nothing left to create: the poller made all three.
    assert (
        kafka_client.ensure_topics([f"{prefix}page", f"{prefix}ad", f"{prefix}dead-letter"]) == []
    )


def test_a_topic_id_is_told_with_or_without_an_admin_client_of_ones_own():
    """The drain's guard against a topic made anew (a broker that lost its state) rests on it:
    an id always None would let old positions be committed on a new topic."""
    page = kafka_client.topic_name("page")
    admin = kafka_client.admin_client()
    found = kafka_client.topic_id(page, admin=admin)
    assert found is not None
    assert kafka_client.topic_id(page) == found
    assert kafka_client.topic_id(f"missing-{uuid.uuid4().hex}", admin=admin) is None


def test_app_update_events_retried_through_kafka_are_counted_once(site):
    for _ in range(2):  # every batch twice, as apps retrying after a lost answer would
        for ip, events in DEVICES.items():
            response = post_updates({"site": site.public_id, "app": APP, "events": events}, ip=ip)
            assert response.status_code == 202, response.content
    sink = get_sink()
    assert isinstance(sink, KafkaSink)
    sink.flush(10)
    sent = sum(len(events) for events in DEVICES.values())
    updates = "SELECT count() FROM page_events WHERE site_id = {s:String} AND app_id != ''"
    drain = Drain(CONSUMERS["page-events"], stop=threading.Event())
    run_drain_until(drain, lambda: count(updates, site.public_id) >= sent)
    assert count(updates, site.public_id) == sent
    query = ReportQuery.parse(site_id=site.public_id, timezone="UTC", params={})
    adoption = app_releases.adoption(query, app=APP)
    assert {key: adoption[key] for key in EXPECTED_ADOPTION} == EXPECTED_ADOPTION
