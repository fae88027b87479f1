"""The drain's failures against Tansu and the embedded ClickHouse: a batch refused for a
transient reason is inserted again, never dead-lettered; a poison row is dead-lettered and its
batch's good rows stored once; a dead letter Kafka does not acknowledge keeps the batch from
being committed. Counts are plain SQL on the raw table."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError
from confluent_kafka import Producer, TopicPartition
from django.conf import settings
from django.test import override_settings
from prometheus_client import REGISTRY

from events.rows import PageRow, encoder
from ingest import drain as drain_module
from ingest.drain import CONSUMERS, Drain
from ingest.selectors import forget_site_configs
from ingest.sinks import reset_sink
from ingest.topics import DEAD_LETTER, ensure_ingest_topics
from naboria import clickhouse, kafka_client
from scripts.test_services import free_port

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.clickhouse,
    pytest.mark.django_db,
    pytest.mark.usefixtures("clickhouse_schema"),
]

STORED = "SELECT count(), uniqExact(event_id) FROM page_events WHERE site_id = {s:String}"


@pytest.fixture(autouse=True)
def kafka_path(monkeypatch) -> Iterator[None]:
    forget_site_configs()
    monkeypatch.setattr(drain_module, "RETRY_SECONDS", 0.3)
    assert ensure_ingest_topics()  # producers do not create topics
    with override_settings(INGEST_BATCH_SECONDS=0.3):
        reset_sink()
        yield
        reset_sink()


def stored(site_id: str) -> tuple[int, int]:
    """(rows, distinct event ids) of the site in page_events."""
    rows, ids = clickhouse.get_client().query(STORED, parameters={"s": site_id}).result_rows[0]
    return int(rows), int(ids)


def page_row(site_id: str, **changes: Any) -> PageRow:
    # Now: a row past its retention would be dropped by the table's TTL as it is inserted.
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.000")
    row = PageRow(
        event_id=str(uuid.uuid4()),
        site_id=site_id,
        timestamp=now,
        received_at=now,
        event_type="pageview",
        visitor_id="v",
        consent_state="none",
        pathname="/",
        url="https://example.com/",
        retention_days=30,
    )
    return msgspec.structs.replace(row, **changes)


def produce(site_id: str, lines: list[bytes]) -> tuple[int, int]:
    """One message of these rows, keyed by site; its (partition, offset)."""
    where: list[tuple[int, int]] = []
    producer = kafka_client.get_producer()
    producer.produce(
        kafka_client.topic_name("page"),
        key=site_id.encode(),
        value=b"\n".join(lines),
        on_delivery=lambda error, message: where.append((message.partition(), message.offset())),
    )
    producer.flush(10)
    assert where, "the message was not delivered"
    return where[0]


def committed_offset(partition: int) -> int:
    """The drain group's next offset to read in this partition of the page topic."""
    consumer = kafka_client.build_consumer(group_id=f"{settings.DRAIN_GROUP_ID}.page-events")
    [found] = consumer.committed(
        [TopicPartition(kafka_client.topic_name("page"), partition)], timeout=10
    )
    consumer.close()
    return int(found.offset)


def dead_letters(marker: bytes, expected: int) -> list[Any]:
    """The dead letters whose row holds ``marker``: waits for ``expected`` of them, then a
    second more for any copy."""
    reader = kafka_client.build_consumer(group_id=f"dlq-{uuid.uuid4().hex}")
    reader.assign(
        [
            TopicPartition(kafka_client.topic_name(DEAD_LETTER), partition, -2)
            for partition in range(6)
        ]
    )
    found: list[Any] = []
    deadline = time.monotonic() + 20
    settle: float | None = None
    while time.monotonic() < (settle or deadline):
        for message in reader.consume(100, 0.3):
            if not message.error() and marker in message.value():
                found.append(message)
        if len(found) >= expected and settle is None:
            settle = time.monotonic() + 1.0
    reader.close()
    return found


def dead_letters_counted() -> float:
    return (
        REGISTRY.get_sample_value("naboria_drain_dead_letters_total", {"consumer": "page-events"})
        or 0.0
    )


class DrainThread:
    """A drain run in a thread of its own, keeping what the run raised."""

    def __init__(self) -> None:
        self.drain = Drain(CONSUMERS["page-events"], stop=threading.Event())
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.drain.run()
        except BaseException as error:
            self.error = error

    def stop(self) -> None:
        self.drain.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


@pytest.fixture
def start_drain() -> Iterator[Callable[[], DrainThread]]:
    """Starts drains that are stopped after the test, whatever it asserted."""
    started: list[DrainThread] = []

    def start() -> DrainThread:
        started.append(DrainThread())
        return started[-1]

    yield start
    for running in started:
        running.drain.stop.set()
        running.thread.join(timeout=30)


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        time.sleep(0.1)
    assert condition(), "not reached in time"


def clickhouse_error(code: int, name: str) -> DatabaseError:
    """The error clickhouse-connect raises for a refusal with this code (as the chdb backend
    makes it from the engine's message)."""
    return DatabaseError(f"Code: {code}. DB::Exception: refused for the test. ({name})", code=code)


@pytest.mark.parametrize(
    ("code", "name"), [(252, "TOO_MANY_PARTS"), (241, "MEMORY_LIMIT_EXCEEDED")]
)
def test_a_batch_refused_for_a_transient_reason_is_inserted_again(
    site, monkeypatch, start_drain, code, name
):
    rows = [encoder.encode(page_row(site.public_id)) for _ in range(5)]
    partition, offset = produce(site.public_id, rows)
    timeline: list[str] = []
    real_insert = drain_module.insert_rows

    def refused_once(table: str, encoded: list[bytes]) -> None:
        if site.public_id.encode() in b"".join(encoded) and "refused" not in timeline:
            timeline.append("refused")
            raise clickhouse_error(code, name)
        real_insert(table, encoded)
        if site.public_id.encode() in b"".join(encoded):
            timeline.append("inserted")

    monkeypatch.setattr(drain_module, "insert_rows", refused_once)
    dead_before = dead_letters_counted()
    running = start_drain()
    real_commit = running.drain._commit

    def recording_commit(messages: list[Any]) -> None:
        real_commit(messages)
        if any(message.key() == site.public_id.encode() for message in messages):
            timeline.append("committed")

    monkeypatch.setattr(running.drain, "_commit", recording_commit)
    wait_for(lambda: "committed" in timeline)
    running.stop()
    assert running.error is None
    # Inserted again as a whole (not row by row), once, and committed only afterwards.
    assert timeline == ["refused", "inserted", "committed"]
    assert stored(site.public_id) == (5, 5)
    assert dead_letters_counted() == dead_before
    assert committed_offset(partition) > offset


def test_a_poison_row_is_dead_lettered_and_the_good_rows_stored_once(
    site, monkeypatch, start_drain
):
    """The rows refused are looked for after the batch was refused, with a transient failure
    in the middle: the whole batch is tried again, the rows stored before the failure are not
    sent again, the poison row is dead-lettered once, with ClickHouse's error."""
    marker = uuid.uuid4().hex
    good = [encoder.encode(page_row(site.public_id, visitor_id=marker)) for _ in range(4)]
    poison = encoder.encode(
        page_row(site.public_id, visitor_id=marker, timestamp="yyyy-mm-dd hh:mm:ss.fff")
    )
    partition, offset = produce(site.public_id, [good[0], good[1], poison, good[2], good[3]])
    attempts: list[list[bytes]] = []
    stored_by: list[bytes] = []  # each row of every insert that succeeded
    real_insert = drain_module.insert_rows

    def failing_on_the_fourth_insert(table: str, encoded: list[bytes]) -> None:
        if any(marker.encode() in row for row in encoded):
            attempts.append(list(encoded))
            # The batch refused, the same again when the refused rows are looked for, its
            # first half [good[0], good[1]] stored, then the second half (with the poison
            # row) fails for a passing reason.
            if len(attempts) == 4:
                raise clickhouse_error(209, "SOCKET_TIMEOUT")
        real_insert(table, encoded)
        stored_by.extend(encoded)

    monkeypatch.setattr(drain_module, "insert_rows", failing_on_the_fourth_insert)
    running = start_drain()
    wait_for(lambda: committed_offset(partition) > offset)
    running.stop()
    assert running.error is None
    assert stored(site.public_id) == (4, 4)
    assert attempts[2] == [good[0], good[1]]  # stored before the transient failure
    # The pass after the failure did not send again what the first one stored.
    assert sorted(stored_by) == sorted(good)
    # Halves, not one insert per row.
    assert len(attempts) < 12
    [letter] = dead_letters(marker.encode(), expected=1)
    assert letter.value() == poison
    headers = dict(letter.headers())
    assert headers["error"].startswith(b"refused by ClickHouse: Code: 41.")  # DATETIME
    assert headers["source-offset"] == str(offset).encode()


@pytest.fixture
def unreachable_dead_letter_topic(monkeypatch) -> Iterator[dict[str, Any]]:
    """The drain's dead letters go to a broker nobody listens on until ``state["down"]`` is
    cleared; ``state["attempts"]`` counts the drain's tries."""
    dead = Producer({"bootstrap.servers": f"127.0.0.1:{free_port()}", "message.timeout.ms": 1000})
    real_producer = kafka_client.get_producer
    state: dict[str, Any] = {"down": True, "attempts": 0}

    def producer_for_the_drain() -> Any:
        if threading.current_thread().name.startswith("drain-writer") and state["down"]:
            state["attempts"] += 1
            return dead
        return real_producer()

    monkeypatch.setattr(kafka_client, "get_producer", producer_for_the_drain)
    yield state
    dead.purge()
    dead.flush(0)


def poison_batch(site_id: str, marker: str) -> tuple[list[bytes], bytes, bytes]:
    good = [encoder.encode(page_row(site_id, visitor_id=marker)) for _ in range(3)]
    refused = encoder.encode(
        page_row(site_id, visitor_id=marker, timestamp="yyyy-mm-dd hh:mm:ss.fff")
    )
    invalid = f'{{"not a row": "{marker}"}}'.encode()
    return good, refused, invalid


def test_a_dead_letter_not_delivered_keeps_the_batch_uncommitted_until_it_is(
    site, start_drain, unreachable_dead_letter_topic
):
    """The delivery report says the dead letters failed: the batch is tried again in the same
    run, committed only once Kafka took them, and its rows are stored once."""
    marker = uuid.uuid4().hex
    good, refused, invalid = poison_batch(site.public_id, marker)
    partition, offset = produce(site.public_id, [*good, refused, invalid])
    committed_before = committed_offset(partition)
    running = start_drain()
    wait_for(lambda: unreachable_dead_letter_topic["attempts"] >= 2)
    assert stored(site.public_id) == (3, 3)
    assert committed_offset(partition) == committed_before <= offset

    unreachable_dead_letter_topic["down"] = False
    wait_for(lambda: committed_offset(partition) > offset)
    running.stop()
    assert running.error is None
    assert stored(site.public_id) == (3, 3)
    letters = dead_letters(marker.encode(), expected=2)
    assert sorted(letter.value() for letter in letters) == sorted([refused, invalid])


def test_without_a_delivery_report_the_batch_is_read_again_by_the_next_run(
    site, monkeypatch, start_drain, unreachable_dead_letter_topic
):
    """No delivery report within DEAD_LETTER_SECONDS (a broker that does not answer): a drain
    stopped meanwhile commits nothing, and the next run reads the batch again, stores none of
    its rows twice and dead-letters each refused row once."""
    monkeypatch.setattr(drain_module, "DEAD_LETTER_SECONDS", 0.5)
    marker = uuid.uuid4().hex
    good, refused, invalid = poison_batch(site.public_id, marker)
    partition, offset = produce(site.public_id, [*good, refused, invalid])
    committed_before = committed_offset(partition)
    first = start_drain()
    wait_for(lambda: unreachable_dead_letter_topic["attempts"] >= 2)
    first.stop()
    assert isinstance(first.error, drain_module.DeadLetterFailed)
    assert "without a delivery report" in str(first.error)
    assert committed_offset(partition) == committed_before <= offset
    assert stored(site.public_id) == (3, 3)

    unreachable_dead_letter_topic["down"] = False
    second = start_drain()
    wait_for(lambda: committed_offset(partition) > offset)
    second.stop()
    assert second.error is None
    assert stored(site.public_id) == (3, 3)
    letters = dead_letters(marker.encode(), expected=2)
    assert sorted(letter.value() for letter in letters) == sorted([refused, invalid])
