"""The drain: long-lived Kafka consumers that load event rows into ClickHouse.

Consumers are registered by name in ``CONSUMERS`` (page-events, ad-events). Each runs a loop:
consume, batch (``INGEST_BATCH_SIZE`` rows or ``INGEST_BATCH_SECONDS``), validate, look up which
events are stored already, insert, and only then commit offsets. A writer thread does the
inserts, so the next batch is read, decoded and looked up meanwhile; commits stay in the
consumer thread, in order. A due batch keeps growing while the writer is busy, up to
``DRAIN_MAX_BATCH_ROWS``: under a backlog the drain makes few large inserts (ClickHouse
merges every insert's parts afterwards, which costs about as much CPU again at 10,000-row
inserts), and a quiet topic's rows wait no longer than before. Hosted in every Celery worker
by a bootstep (naboria.celery) or run alone with ``python manage.py drain``.

Exactly once into ClickHouse: a consumer resumes at its committed offsets, so after a crash
between insert and commit, a rebalance, or a topic read again from its start, it reads messages
it had stored already; the writer stores only rows whose event is not stored yet
(events.dedup), after the deduplication window has been repaired on start, on every new
assignment and before retrying an insert whose outcome is unknown. A batch is looked up while
the batches before it may still be inserting: their keys count as stored (``in_flight``), and
a repair, a retry or a failed lookup makes the writer look the batch up again itself. Nothing
derived is written here: the session facts are rebuilt from the stored rows. A topic that was
deleted and created again (a broker that lost its state) is read from its beginning: its
offsets start anew, and a committed offset of its previous life would skip events.

Failures (ingest.storage.classify_failure tells them apart by ClickHouse's error code) never
let a batch be committed before all of its rows are stored or dead-lettered:

- transient (ClickHouse unreachable or timing out, TOO_MANY_PARTS, MEMORY_LIMIT_EXCEEDED, too
  many queries, read-only replicas, Keeper, a table missing during a migration, ...): the batch
  is inserted again as a whole every ``RETRY_SECONDS``, however long it takes, and nothing of
  it is dead-lettered;
- poison (ClickHouse cannot parse or keep what a row holds: CANNOT_PARSE_*, TYPE_MISMATCH,
  INCORRECT_DATA, ...): the batch's new rows are inserted in halves of what was refused, down
  to the single rows ClickHouse refuses, which go to the dead-letter topic; rows stored before
  a failure are not stored again (the window is repaired and the rows looked up first);
- a code in neither list (or no code and no network error): transient while ClickHouse does
  not answer a ping; while it does, ``UNKNOWN_FAILURES_BEFORE_POISON`` attempts, then poison;
- a message that is not a valid row (not JSON of a row, an event id that is no UUID) is
  dead-lettered without asking ClickHouse.

Dead letters carry the error in their headers. A batch is committed only once Kafka has
acknowledged every dead letter of it (its delivery report, within ``DEAD_LETTER_SECONDS``);
otherwise the attempt failed and the batch is tried again after a pause (its stored rows are
skipped then), so a dead letter may reach its topic twice but is never lost.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgspec
from django.conf import settings
from prometheus_client import Counter, Gauge, Histogram

from events import dedup
from events.dedup import EventKey
from events.rows import RowEssentials, essentials_decoder
from ingest.batching import Batch
from ingest.storage import Failure, classify_failure, insert_rows
from ingest.topics import DEAD_LETTER, ensure_ingest_topics
from naboria import clickhouse, kafka_client

logger = logging.getLogger(__name__)

ROWS_INSERTED = Counter("naboria_drain_rows_total", "Rows inserted by the drain.", ["consumer"])
DUPLICATES = Counter(
    "naboria_drain_duplicates_total",
    "Rows not inserted because their event was stored already (retries, redeliveries).",
    ["consumer"],
)
DEAD_LETTERS = Counter(
    "naboria_drain_dead_letters_total",
    "Poison rows sent to the dead-letter topic (and acknowledged by Kafka).",
    ["consumer"],
)
INSERT_SECONDS = Histogram(
    "naboria_drain_insert_seconds", "Duration of one batch insert.", ["consumer"]
)
LAG = Gauge(
    "naboria_drain_lag_messages",
    "Messages of an assigned partition not committed yet: its end (as last fetched) minus the "
    "group's committed offset (its first offset if the group never committed).",
    ["consumer", "partition"],
)
# How often the drain updates LAG (from what its fetches cached: no broker round trip).
LAG_SECONDS = 1.0
# The pause before a failed attempt to store a batch is made again.
RETRY_SECONDS = 2.0
# Attempts at a batch whose failure is neither known transient nor known poison (while
# ClickHouse answers a ping) before the rows it refuses are looked for and
# dead-lettered: a lasting error of the server that no list names must not stop the drain for
# good, nor must a passing one dead-letter good rows at its first occurrence.
UNKNOWN_FAILURES_BEFORE_POISON = 3
# How long the drain waits for Kafka's delivery reports of a batch's dead letters.
DEAD_LETTER_SECONDS = 10.0
CONSUME_AT_ONCE = 500
# How long a due batch waits for more messages while the writer is still busy.
BUSY_WRITER_WAIT = 0.05
# How often a running drain asks whether its topic is still the one it reads: a broker that
# restarted without its state makes the topic anew without any rebalance, and the consumer
# would go on at its old positions, skipping the new topic's first messages.
TOPIC_CHECK_SECONDS = 5.0


class DeadLetter(NamedTuple):
    message: Any  # the Kafka message the row came in
    row: bytes  # the row: a line of that message
    error: str


class DeadLetterFailed(Exception):
    """Kafka did not acknowledge a dead letter in time: the batch must not be committed."""


@dataclass(frozen=True)
class ConsumerSpec:
    name: str
    topic_kind: str
    table: str


CONSUMERS = {
    spec.name: spec
    for spec in (
        ConsumerSpec("page-events", "page", "page_events"),
        ConsumerSpec("ad-events", "ad", "ad_events"),
    )
}


class Drain:
    """One consumer loop for one registered consumer."""

    def __init__(self, spec: ConsumerSpec, *, stop: threading.Event) -> None:
        self.spec = spec
        self.stop = stop
        self.topic = kafka_client.topic_name(spec.topic_kind)
        # The id of the topic this drain last read: another one under the same name is read
        # from its start.
        self.topic_id: str | None = None
        # Asked before every commit: one admin connection for the drain's life, not one a call.
        self.admin: Any = None
        # Counts the times the topic was found made anew; batches read before the last time
        # are not committed (see _forget_positions).
        self.reading = 0
        # Set on start and on every assignment; the writer repairs the window before it inserts.
        self.repair_due = threading.Event()
        # Held by a repair and by a lookup: no lookup sees a window half repaired.
        self.repair_lock = threading.Lock()
        # The batches handed to the writer whose insert this (consumer) thread has not seen
        # finish: a lookup of a later batch counts their keys as stored.
        self.in_flight: set[PreparedBatch] = set()
        self.consumer: Any = None
        # The group's next offset to read of each assigned partition (its start if it never
        # committed): asked from the broker once a partition is assigned, then what this drain
        # commits (for LAG).
        self.committed: dict[int, int] = {}
        self.committed_asked: set[int] = set()
        self.lag_partitions: set[int] = set()
        self.writer: _BatchWriter | None = None
        self.batch: Batch[Any] = Batch(
            max_size=settings.INGEST_BATCH_SIZE, max_seconds=settings.INGEST_BATCH_SECONDS
        )
        self.max_batch_rows = max(settings.DRAIN_MAX_BATCH_ROWS, settings.INGEST_BATCH_SIZE)

    @property
    def pending(self) -> int:
        """Messages read and not yet inserted."""
        return len(self.batch)

    def run(self) -> None:
        ensure_ingest_topics()
        self.consumer = kafka_client.build_consumer(
            group_id=f"{settings.DRAIN_GROUP_ID}.{self.spec.name}"
        )
        # After a crash, what the last run held was never committed and will be read again.
        self.batch.take()
        self.in_flight.clear()
        self.repair_due.set()
        batch = self.batch
        writer = self.writer = _BatchWriter(self)
        self.consumer.subscribe(
            [self.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        logger.info("drain %s consuming %s", self.spec.name, self.topic)
        next_topic_check = time.monotonic() + TOPIC_CHECK_SECONDS
        next_lag_report = time.monotonic()
        try:
            while not self.stop.is_set():
                self._commit_written(writer)
                if time.monotonic() >= next_lag_report:
                    next_lag_report = time.monotonic() + LAG_SECONDS
                    self._report_lag()
                if time.monotonic() >= next_topic_check:
                    next_topic_check = time.monotonic() + TOPIC_CHECK_SECONDS
                    if self._topic_created_anew():
                        self._read_from_start(self.consumer.assignment())
                # consume() hands over what librdkafka prefetched in one call; poll() would
                # cost a call (and a wait) per message.
                due = batch.is_due()
                wait = BUSY_WRITER_WAIT if due else min(max(batch.seconds_left(), 0.0), 0.5)
                if len(batch) < self.max_batch_rows:
                    for message in self.consumer.consume(CONSUME_AT_ONCE, wait):
                        if message.error():
                            logger.warning("drain %s: %s", self.spec.name, message.error())
                        else:
                            batch.add(message, rows=message.value().count(b"\n") + 1)
                if batch.is_due() and (writer.is_free() or len(batch) >= self.max_batch_rows):
                    writer.submit(self._prepare(batch.take()))
            # Asked to stop (SIGTERM): what was read is inserted and committed before leaving.
            writer.submit(self._prepare(batch.take()))
            writer.finish()
            self._commit_written(writer)
        finally:
            writer.abandon()
            # Closing revokes the partitions: what had to be stored is (the loop ended), or the
            # run failed and there is nothing to hand over.
            self.writer = None
            self.consumer.close()
            self._forget_lag(self.lag_partitions)
            self.lag_partitions = set()

    def _report_lag(self) -> None:
        assignment = self.consumer.assignment()
        unknown = [tp for tp in assignment if tp.partition not in self.committed_asked]
        if unknown:
            self.committed_asked.update(tp.partition for tp in unknown)
            try:
                found = kafka_client.committed_offsets(self.consumer, unknown, timeout=1.0)
            except Exception as error:  # the lag is then counted from the read position
                logger.warning("drain %s: committed offsets not read: %s", self.spec.name, error)
            else:
                for partition, offset in found.items():
                    self.committed.setdefault(partition, offset)
        marks = kafka_client.cached_high_watermarks(self.consumer, assignment)
        positions = {
            partition.partition: partition.offset
            for partition in self.consumer.position(assignment)
        }
        reported = set()
        for partition, high in marks.items():
            done = self.committed.get(partition, positions.get(partition, -1))
            if done >= 0:
                LAG.labels(self.spec.name, str(partition)).set(max(high - done, 0))
                reported.add(partition)
        self._forget_lag(self.lag_partitions - reported)
        self.lag_partitions = reported

    def _forget_lag(self, partitions: set[int]) -> None:
        # A partition now read by another drain (or none) is that one's to report.
        for partition in partitions:
            with contextlib.suppress(KeyError):
                LAG.remove(self.spec.name, str(partition))

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        # Whoever held these partitions before may have died inside an insert.
        self.repair_due.set()
        if self._topic_created_anew():
            self._forget_positions()
            for partition in partitions:
                partition.offset = kafka_client.OFFSET_BEGINNING
        consumer.assign(partitions)

    def _read_from_start(self, partitions: list[Any]) -> None:
        self._forget_positions()
        for partition in partitions:
            partition.offset = kafka_client.OFFSET_BEGINNING
            self.consumer.seek(partition)

    def _forget_positions(self) -> None:
        """The topic was made anew: what was read so far carries positions that mean nothing
        in it (they would skip its first messages if committed). Its rows are stored or will
        be read again; only its positions are left uncommitted."""
        self.reading += 1
        self.committed.clear()
        self.committed_asked.clear()
        self.batch.take()

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        # The next owner of these partitions resumes at their commits and looks up which events
        # are stored once this returns: what was read of them is stored and committed first, so
        # no insert of this consumer can land after that lookup (and count twice).
        if self.writer is None:
            return
        self.writer.submit(self._prepare(self.batch.take()))
        self.writer.wait_until_idle()
        self._commit_written(self.writer)
        self._forget_partitions(partitions)

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        # Taken away without a handover (this consumer missed the group's deadline): another
        # owner may be reading them already, so nothing more is inserted from what was read.
        logger.warning("drain %s: partitions lost: %s", self.spec.name, partitions)
        self.batch.take()
        self._forget_partitions(partitions)

    def _forget_partitions(self, partitions: list[Any]) -> None:
        # Their next owner commits past what this drain committed: were they assigned here
        # again, the lag would be counted from a stale offset.
        for partition in partitions:
            self.committed.pop(partition.partition, None)
            self.committed_asked.discard(partition.partition)

    def _topic_created_anew(self) -> bool:
        """Whether the topic has another id than when this drain last looked (it was deleted
        and created again, e.g. by a broker that lost its state): its offsets start anew, so it
        is read from its start (what was stored already is skipped by deduplication)."""
        return self._topic_check() == "anew"

    def _topic_check(self) -> str:
        """ "anew" (see _topic_created_anew), "same", or "unknown" when the broker could not
        tell (no answer in time, or no such topic right now)."""
        if self.admin is None:
            self.admin = kafka_client.admin_client()
        found = kafka_client.topic_id(self.topic, admin=self.admin)
        if found is None:
            return "unknown"
        anew = self.topic_id is not None and found != self.topic_id
        if anew:
            logger.warning(
                "drain %s: topic %s was created anew; reading it from its start",
                self.spec.name,
                self.topic,
            )
        self.topic_id = found
        return "anew" if anew else "same"

    def _prepare(self, messages: list[Any]) -> PreparedBatch | None:
        """Check the rows of these messages and take their keys (in the consumer thread);
        invalid rows are kept for the writer to dead-letter."""
        if not messages:
            return None
        invalid: list[DeadLetter] = []
        rows: list[bytes] = []
        decoded: list[RowEssentials] = []
        sources: list[Any] = []
        for message in messages:
            # A message holds the rows of one accepted batch, one per line.
            for line in message.value().split(b"\n"):
                try:
                    decoded.append(essentials_decoder.decode(line))
                except msgspec.DecodeError as error:
                    invalid.append(DeadLetter(message, line, f"invalid row: {error}"))
                    continue
                rows.append(line)
                sources.append((message, line))
        try:
            keys = EventKey.all_of(decoded)
        except ValueError:  # some event id is not a UUID: find which, row by row
            keys, valid = [], []
            for index, row in enumerate(decoded):
                try:
                    keys.append(EventKey.of(row))
                except ValueError as error:
                    message, line = sources[index]
                    invalid.append(DeadLetter(message, line, f"invalid row: {error}"))
                else:
                    valid.append(index)
            rows = [rows[index] for index in valid]
            sources = [sources[index] for index in valid]
        prepared = PreparedBatch(
            rows, keys, sources, messages, self._look_up(keys), invalid, self.reading
        )
        self.in_flight.add(prepared)
        return prepared

    def _look_up(self, keys: list[EventKey]) -> list[int] | None:
        """Which rows to insert, while the writer inserts earlier batches; None leaves it to
        the writer (a repair is due, or ClickHouse did not answer: the writer retries)."""
        in_flight = set().union(*(batch.keys for batch in self.in_flight))
        with self.repair_lock:
            if self.repair_due.is_set():
                return None
            try:
                return dedup.new_rows(self.spec.table, keys, in_flight=in_flight)
            except Exception:
                return None

    def _commit_written(self, writer: _BatchWriter) -> None:
        """Commit, in order, the batches the writer has inserted. Commits stay in the consumer's
        own thread: a synchronous commit from another thread deadlocks against consume()."""
        writer.raise_if_failed()
        written = writer.take_written()
        if not written:
            return
        # A topic made anew since the last look (a broker that lost its state) is caught before
        # its positions are committed, not up to TOPIC_CHECK_SECONDS later: a drain stopped in
        # between would otherwise have committed past the new topic's first messages. When the
        # broker cannot tell (a restarted broker under load may not answer in time), nothing is
        # committed this time: a later commit covers these positions, and a drain stopped
        # before that reads them again (deduplicated).
        check = self._topic_check()
        if check == "anew":
            self._read_from_start(self.consumer.assignment())
        for prepared in written:
            self.in_flight.discard(prepared)
            if check != "unknown" and prepared.reading == self.reading:
                self._commit(prepared.messages)

    def _insert(self, prepared: PreparedBatch) -> None:
        """Store the batch's new rows and dead-letter the rows refused; return once both are
        done (the batch may then be committed), or raise if asked to stop before.

        A failed attempt is made again after ``RETRY_SECONDS``, the batch as a whole. Once a
        failure says (or, unknown, has said often enough) that ClickHouse refuses rows for what
        they hold, the attempts look for the rows it refuses (_insert_finding_refused)."""
        table = self.spec.table
        keep = prepared.keep
        finding_refused = False
        unknown_failures = 0
        while True:
            try:
                if self.repair_due.is_set():
                    with self.repair_lock:
                        self.repair_due.clear()
                        dedup.repair_window(table)
                    keep = None  # looked up before the repair
                if finding_refused:
                    refused = self._insert_finding_refused(
                        prepared,
                        refuse_unknown=unknown_failures >= UNKNOWN_FAILURES_BEFORE_POISON,
                    )
                else:
                    with INSERT_SECONDS.labels(self.spec.name).time():
                        if keep is None:
                            keep = dedup.new_rows(table, prepared.keys)
                        insert_rows(table, [prepared.encoded[index] for index in keep])
                    ROWS_INSERTED.labels(self.spec.name).inc(len(keep))
                    DUPLICATES.labels(self.spec.name).inc(len(prepared.encoded) - len(keep))
                    refused = []
                self._send_dead_letters([*prepared.invalid, *refused])
                return
            except DeadLetterFailed as error:
                # The rows are stored: the next attempt finds them stored and sends the dead
                # letters again.
                logger.warning(
                    "drain %s: %s; batch not committed, retrying in %g s",
                    self.spec.name,
                    error,
                    RETRY_SECONDS,
                )
                self._pause(error)
            except Exception as error:
                # The insert may have happened before the answer was lost: the next attempt
                # repairs the window and looks the batch up again.
                self.repair_due.set()
                failure = classify_failure(error)
                if failure is Failure.UNKNOWN:
                    if not self._clickhouse_is_up():
                        failure = Failure.TRANSIENT
                    else:
                        unknown_failures += 1
                        if unknown_failures >= UNKNOWN_FAILURES_BEFORE_POISON:
                            failure = Failure.POISON
                if failure is Failure.POISON and not finding_refused:
                    logger.error(
                        "drain %s: batch refused (%s); looking for the rows refused",
                        self.spec.name,
                        error,
                    )
                    finding_refused = True
                    continue
                logger.warning(
                    "drain %s: insert failed (%s: %s), retrying in %g s",
                    self.spec.name,
                    failure.value,
                    error,
                    RETRY_SECONDS,
                )
                self._pause(error)
            keep = None

    def _pause(self, error: Exception) -> None:
        """Wait before the next attempt; raise ``error`` if asked to stop meanwhile (nothing
        was committed: the batch will be read again)."""
        if self.stop.wait(RETRY_SECONDS):
            raise error

    def _insert_finding_refused(
        self, prepared: PreparedBatch, *, refuse_unknown: bool
    ) -> list[DeadLetter]:
        """Insert the batch's new rows in halves of the part ClickHouse refused, down to the
        single rows it refuses, and return those for the dead-letter topic: a few dozen
        inserts for a 50,000-row batch with one bad row, where one insert per row would take
        minutes. Called after a repair of the window, so the lookup skips what an earlier
        attempt stored. A transient failure raises (the batch is tried again), and so does an
        unknown one until the batch has had its attempts (``refuse_unknown``)."""
        table = self.spec.table
        keep = dedup.new_rows(table, prepared.keys)
        DUPLICATES.labels(self.spec.name).inc(len(prepared.encoded) - len(keep))
        refused: list[DeadLetter] = []
        parts = [keep]
        while parts:
            part = parts.pop()
            try:
                insert_rows(table, [prepared.encoded[index] for index in part])
            except Exception as error:
                failure = classify_failure(error)
                if failure is Failure.TRANSIENT or (
                    failure is Failure.UNKNOWN and not (refuse_unknown and self._clickhouse_is_up())
                ):
                    raise
                if len(part) == 1:
                    message, line = prepared.sources[part[0]]
                    refused.append(DeadLetter(message, line, f"refused by ClickHouse: {error}"))
                    continue
                # A refusal by a materialized view comes after ClickHouse stored the rows in
                # the raw table (it writes the table, then its views): what of this part is
                # stored already is recorded and left out before it is split.
                dedup.repair_window(table)
                stored = set(part) - {
                    part[index]
                    for index in dedup.new_rows(table, [prepared.keys[index] for index in part])
                }
                part = [index for index in part if index not in stored]
                middle = len(part) // 2
                parts += [part[middle:], part[:middle]]  # the first half is inserted first
            else:
                ROWS_INSERTED.labels(self.spec.name).inc(len(part))
        if refused:
            self.repair_due.set()  # the single rows refused by a view are in the raw table
        return refused

    @staticmethod
    def _clickhouse_is_up() -> bool:
        try:
            clickhouse.ping()
        except clickhouse.ClickHouseUnavailable:
            return False
        return True

    def _send_dead_letters(self, letters: list[DeadLetter]) -> None:
        """Send refused rows to the dead-letter topic and wait for Kafka's delivery report of
        each; DeadLetterFailed unless all were acknowledged within DEAD_LETTER_SECONDS (a
        letter whose report came late may then be delivered as well as sent again)."""
        if not letters:
            return
        producer = kafka_client.get_producer()
        # The error of each delivery report (None: acknowledged), appended by whichever thread
        # polls the producer: this one below, or the sink's poller in the same process.
        reports: list[Any] = []

        def on_delivery(error: Any, _message: Any) -> None:
            reports.append(error)

        topic = kafka_client.topic_name(DEAD_LETTER)
        try:
            for letter in letters:
                producer.produce(
                    topic,
                    value=letter.row,
                    key=letter.message.key(),
                    headers={
                        "error": letter.error[:1000].encode(),
                        "source-topic": letter.message.topic().encode(),
                        "source-partition": str(letter.message.partition()).encode(),
                        "source-offset": str(letter.message.offset()).encode(),
                        "consumer": self.spec.name.encode(),
                    },
                    on_delivery=on_delivery,
                )
        except Exception as error:  # BufferError (the producer's queue is full), KafkaException
            raise DeadLetterFailed(f"dead letter not queued: {error}") from error
        deadline = time.monotonic() + DEAD_LETTER_SECONDS
        while len(reports) < len(letters) and (left := deadline - time.monotonic()) > 0:
            producer.poll(min(left, 0.1))
        failed = [error for error in reports if error is not None]
        if failed:
            raise DeadLetterFailed(f"dead letter not delivered: {failed[0]}")
        if len(reports) < len(letters):
            raise DeadLetterFailed(
                f"{len(letters) - len(reports)} of {len(letters)} dead letters without a "
                f"delivery report after {DEAD_LETTER_SECONDS:.0f} s"
            )
        DEAD_LETTERS.labels(self.spec.name).inc(len(letters))

    def _commit(self, messages: list[Any]) -> None:
        next_offsets: dict[int, int] = {}
        for message in messages:
            partition = message.partition()
            next_offsets[partition] = max(next_offsets.get(partition, 0), message.offset() + 1)
        kafka_client.commit_offsets(self.consumer, self.topic, next_offsets)
        self.committed.update(next_offsets)


@dataclass(frozen=True, eq=False)  # compared (and hashed) by identity
class PreparedBatch:
    encoded: list[bytes]
    keys: list[EventKey]  # the deduplication key of each encoded row
    sources: list[tuple[Any, bytes]]  # (message, line) of each encoded row
    messages: list[Any]
    keep: list[int] | None  # indexes of the rows to insert, if looked up already
    invalid: list[DeadLetter]  # rows that are not valid rows, for the dead-letter topic
    reading: int  # Drain.reading when its messages were read: committed only if still the same


class _BatchWriter:
    """Inserts prepared batches in a thread of its own, in order and one at a time, while the
    consumer thread reads, decodes and looks up the next batch, so ClickHouse's insert overlaps
    with them (chdb releases the GIL while it works). At most one batch waits, so a slow
    ClickHouse slows the reading too. Inserted batches are handed back (``take_written``) for
    the consumer thread to commit."""

    def __init__(self, drain: Drain) -> None:
        self.drain = drain
        self.pending: queue.Queue[PreparedBatch | None] = queue.Queue(maxsize=1)
        self.written: queue.SimpleQueue[PreparedBatch] = queue.SimpleQueue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._insert_forever, name=f"drain-writer-{drain.spec.name}", daemon=True
        )
        self.thread.start()

    def _insert_forever(self) -> None:
        while True:
            prepared = self.pending.get()
            try:
                if prepared is None:
                    return
                if self.error is None:  # after a failure nothing more is inserted
                    try:
                        self.drain._insert(prepared)
                    except BaseException as error:
                        self.error = error
                    else:
                        self.written.put(prepared)
            finally:
                self.pending.task_done()

    def wait_until_idle(self) -> None:
        """Wait until every batch submitted is inserted (or failed: see raise_if_failed)."""
        self.pending.join()

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error

    def is_free(self) -> bool:
        """Whether a batch submitted now would be inserted at once (none is inserting or
        waiting)."""
        return self.pending.unfinished_tasks == 0

    def take_written(self) -> list[PreparedBatch]:
        batches = []
        while not self.written.empty():
            batches.append(self.written.get())
        return batches

    def submit(self, prepared: PreparedBatch | None) -> None:
        if prepared is None:
            return
        while True:
            self.raise_if_failed()
            try:
                self.pending.put(prepared, timeout=0.5)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        """Wait until what was submitted is inserted; raise what failed."""
        self.pending.put(None)
        self.thread.join()
        self.raise_if_failed()

    def abandon(self) -> None:
        """Stop the thread without waiting for anything more (the run is ending)."""
        if self.thread.is_alive():
            self.error = self.error or RuntimeError("drain run ended")
            with contextlib.suppress(queue.Full):
                self.pending.put_nowait(None)


class DrainRunner:
    """Runs the named consumers in threads; ``stop()`` finishes their batches and returns."""

    def __init__(self, names: Iterable[str] | None = None) -> None:
        self.specs = [CONSUMERS[name] for name in (names or CONSUMERS)]
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self.drains: list[Drain] = []

    def start(self) -> None:
        for spec in self.specs:
            drain = Drain(spec, stop=self.stop_event)
            self.drains.append(drain)
            thread = threading.Thread(
                target=self._guarded, args=(drain,), name=f"drain-{spec.name}"
            )
            thread.start()
            self.threads.append(thread)

    def _guarded(self, drain: Drain) -> None:
        while not self.stop_event.is_set():
            try:
                drain.run()
            except Exception:
                logger.exception("drain %s crashed; restarting", drain.spec.name)
                self.stop_event.wait(RETRY_SECONDS)

    def stop(self, timeout: float = 60.0) -> None:
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(timeout=max(deadline - time.monotonic(), 0))
