"""Where accepted events go: Kafka when it is configured, else straight to ClickHouse.

Both sinks offer the same calls:

- ``submit_page_rows(rows, key=site)``: takes a batch and returns its ``Acceptance``, which
  the endpoint awaits before it answers 202. On Kafka it settles once Kafka acknowledged the
  rows (acks=all): the batches a process accepts while its previous page messages are still
  unacknowledged (at most ``COALESCE_SECONDS``) go out together, one message per site holding
  their rows newline-separated. On the direct path it is settled at once: the rows wait in the
  writer's pending batch (the embedded profile's promise, docs/durability.md). Either way
  the rows are kept: a delivery that fails is tried again while the process lives, and what
  is still undelivered when the sink closes is spooled to local disk (ingest.spool) and sent
  by the next process that builds a sink. Raises ``SinkFull`` when the bounded in-memory
  buffer (events accepted and not yet delivered, or the direct writer's pending batch) cannot
  take the whole batch, so the endpoint answers 503 and nothing is half-accepted.
- ``write_ad_row(row, key=site)``: returns a future resolved once the row is durable (Kafka
  delivery report with acks=all, or the ClickHouse insert in the direct path); it fails with
  ``SinkUnavailable`` otherwise.
- ``close()``: delivers what is buffered within ``INGEST_SHUTDOWN_SECONDS`` and spools the rest.

The promise and what an operator sees are in docs/durability.md.

Entry point: ``get_sink()`` (one per process, built on first use; it replays the spool);
``reset_sink()`` at exit and for tests.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import logging
import math
import threading
import time
from collections import defaultdict, deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings
from prometheus_client import Counter, Gauge

from events import dedup
from events.dedup import EventKey
from events.rows import essentials_decoder
from ingest import spool
from ingest.batching import Batch
from ingest.storage import store_new_rows
from ingest.topics import AD, PAGE, ensure_ingest_topics, ingest_topics_missing, topics_ensured
from naboria import kafka_client

logger = logging.getLogger(__name__)

PAGE_TABLE = "page_events"
AD_TABLE = "ad_events"

EVENTS_ACCEPTED = Counter(
    "naboria_ingest_events_total",
    "Events accepted by this process (handed to Kafka or the direct writer), by table.",
    ["table"],
)
SINK_REJECTIONS = Counter(
    "naboria_ingest_sink_full_total", "Batches refused with 503 because the buffer was full."
)
PRODUCE_FAILURES = Counter(
    "naboria_kafka_produce_failures_total",
    "Messages Kafka did not acknowledge (delivery report errors), by topic.",
    ["topic"],
)
BUFFERED = Gauge("naboria_ingest_buffered_events", "Events waiting in this process's buffer.")
BUFFER_CAPACITY = Gauge(
    "naboria_ingest_buffer_capacity_events",
    "How many events this process's buffer holds before /collect answers 503.",
)
# Read when scraped, so a dashboard can show the buffer's fill before the sink is built.
BUFFER_CAPACITY.set_function(lambda: settings.INGEST_BUFFER_EVENTS)
PAGE_EVENTS_ACCEPTED = EVENTS_ACCEPTED.labels(PAGE_TABLE)
AD_EVENTS_ACCEPTED = EVENTS_ACCEPTED.labels(AD_TABLE)

# How often the poll thread asks whether the topics still exist: a broker restarted without its
# state has none, and producing waits until they are created again.
TOPIC_CHECK_SECONDS = 2.0
# ... and how often when nothing seems wrong.
TOPIC_RECHECK_SECONDS = 30.0
# A failed page message is produced again after this pause (not in a tight loop).
RETRY_SECONDS = 1.0
# At shutdown, giving up on delivery once nothing was acknowledged for this long.
SHUTDOWN_STALL_SECONDS = 2.0
# Rows per page message (a spool file produced again, or batches coalesced), and bytes per
# coalesced message: well under the broker's 1 MB message limit.
MESSAGE_MAX_ROWS = 1000
MESSAGE_MAX_BYTES = 512 * 1024
# Page batches accepted while the produce thread's previous messages wait for their
# acknowledgement, at most this long, are produced together, one message per site: a produce
# call and a delivery report per request cost the event loop about 20 µs of the ~170 µs of a
# 1-event /collect (bench/RESULTS.md run 14). Under light load a batch is produced at once.
COALESCE_SECONDS = 0.005


class SinkFull(Exception):
    """The in-memory buffer cannot take this batch; the client should retry later."""


class SinkUnavailable(Exception):
    """The event could not be made durable."""


class Acceptance:
    """The outcome of page batches handed to a sink: settled once their rows are durable
    (Kafka acknowledged every message holding them, or they were spooled at shutdown), or
    with ``SinkUnavailable`` when they could be neither.

    The batches of one site produced in one round share one acceptance, so a delivery report
    wakes each waiting event loop once, not once per request.
    """

    __slots__ = ("_error", "_lock", "_messages", "_settled", "_waiters")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages = 0  # produced and not acknowledged yet
        self._settled = False
        self._error: SinkUnavailable | None = None
        self._waiters: dict[asyncio.AbstractEventLoop, _LoopWaiters] = {}

    @classmethod
    def settled_now(cls) -> Acceptance:
        """Settled already (rows kept without anything to wait for): shared, it never changes."""
        return _SETTLED

    def expect_messages(self, messages: int) -> None:
        with self._lock:
            self._messages += messages

    def message_acknowledged(self) -> None:
        with self._lock:
            self._messages -= 1
            last = self._messages == 0
        if last:
            self.settle(None)

    def settle(self, error: SinkUnavailable | None) -> None:
        # Runs on the poll thread, the produce thread or at shutdown: each waiting loop is
        # woken once, and resolves its own futures on its own thread.
        with self._lock:
            if self._settled:
                return
            self._settled, self._error = True, error
            waiters, self._waiters = self._waiters, {}
        for loop, waiting in waiters.items():
            # A closed loop (its server stopped) has nobody waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(waiting.resolve, error)

    async def wait(self, *, timeout: float) -> None:
        """Return once the rows are durable; raise SinkUnavailable, or TimeoutError when
        ``timeout`` passes first (the rows stay in the buffer and may still be delivered)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._settled:
                if self._error is not None:
                    raise self._error
                return
            future: asyncio.Future[None] = loop.create_future()
            waiting = self._waiters.get(loop)
            if waiting is None:
                waiting = self._waiters[loop] = _LoopWaiters(loop)
            waiting.add(future, deadline=loop.time() + timeout)
        await future


class _LoopWaiters:
    """The requests of one event loop waiting on an acceptance, each with its deadline, and
    one timer for all of them (at the earliest deadline): a timer per request (as
    ``asyncio.wait_for`` makes) cost more than a tenth of a 1-event /collect (bench/RESULTS.md
    run 18). Used on the loop's own thread only."""

    __slots__ = ("_loop", "_requests", "_timer", "_timer_at")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._requests: list[tuple[float, asyncio.Future[None]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def add(self, future: asyncio.Future[None], *, deadline: float) -> None:
        self._requests.append((deadline, future))
        if deadline < self._timer_at:
            self._arm(deadline)

    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        """Time out the requests whose deadline passed; the timer again for the others."""
        self._timer, self._timer_at = None, math.inf
        now = self._loop.time()
        later = math.inf
        for deadline, future in self._requests:
            if future.done():  # its request went away
                continue
            if deadline <= now:
                future.set_exception(TimeoutError())
            else:
                later = min(later, deadline)
        if later < math.inf:
            self._arm(later)

    def resolve(self, error: SinkUnavailable | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for _, future in self._requests:
            if future.done():  # timed out, or its request went away
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)


_SETTLED = Acceptance()
_SETTLED._settled = True


class EventSink(Protocol):
    def submit_page_rows(self, rows: Sequence[bytes], *, key: str) -> Acceptance: ...

    def write_ad_row(self, row: bytes, *, key: str) -> Future[None]: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class _PageMessage:
    """One produced page message: an accepted batch's rows (or a spool file's, by site)."""

    value: bytes
    key: bytes
    rows: int
    replay: spool.Claim | None = None
    acceptance: Acceptance | None = None  # of the requests whose batches it holds
    # Produced by the produce thread, which paces its next round on this message's first
    # delivery report.
    paced: bool = False


def _rows_of(messages: Sequence[_PageMessage]) -> list[bytes]:
    return [row for message in messages for row in message.value.split(b"\n")]


def _acceptances_of(messages: Sequence[_PageMessage]) -> list[Acceptance]:
    return [message.acceptance for message in messages if message.acceptance is not None]


class KafkaSink:
    """Produces to the page and ad topics with the process's one producer.

    A page message whose delivery fails (message timeout, unknown topic, purge...) is produced
    again a second later, for as long as the process lives: it stays counted in the bounded
    buffer until Kafka acknowledges it. A message delivered twice that way is stored once (the
    drain deduplicates by event id). At ``close`` what is left after ``INGEST_SHUTDOWN_SECONDS``
    is purged from the producer and written to the spool (ingest.spool).
    """

    def __init__(self) -> None:
        self.producer = kafka_client.get_producer()
        self.page_topic = kafka_client.topic_name(PAGE)
        self.ad_topic = kafka_client.topic_name(AD)
        self.capacity = settings.INGEST_BUFFER_EVENTS
        self._lock = threading.Lock()
        # Page events accepted and not yet acknowledged, those waiting to be produced again
        # included: the bound of the buffer.
        self._in_flight = 0
        self._delivered = 0
        self._last_ack = self._last_topic_check = time.monotonic()
        self._ad_failed = False
        self._retry: deque[tuple[float, _PageMessage]] = deque()
        self._failed_rows = 0  # since the last log line about failed deliveries
        self._last_error = ""
        self._closing = False
        self._purged: list[_PageMessage] = []
        self._replays: list[spool.Claim] = []
        self._replay_pending = spool.has_pending()
        self._next_replay = 0.0
        self._stop = threading.Event()
        # Page rows accepted and not yet produced, by message key, with the acceptance their
        # requests wait on; the produce thread takes them as soon as there are any (``_wake``
        # is set) and its previous messages were acknowledged (``_caught_up``), or
        # COALESCE_SECONDS after it produced those.
        self._pending: dict[bytes, tuple[list[bytes], Acceptance]] = {}
        self._wake = threading.Event()
        self._unacknowledged = 0  # page messages of the produce thread awaiting their report
        self._caught_up = threading.Event()
        self._producing = threading.Thread(
            target=self._produce_forever, name="kafka-produce", daemon=True
        )
        self._producing.start()
        # Delivery reports are served by poll(): requests serve them as they go, and this
        # thread keeps them flowing when no request comes. It also creates the topics (again,
        # when a broker lost them), produces failed messages again and replays the spool, so
        # a broker that is slow or away never blocks the request (and its event loop) that
        # happened to build the sink; messages produced meanwhile wait in librdkafka.
        self._poller = threading.Thread(target=self._poll_forever, name="kafka-poll", daemon=True)
        self._poller.start()

    def _poll_forever(self) -> None:
        next_topic_check = 0.0
        next_failure_log = 0.0
        while not self._stop.is_set():
            # Nothing may end this thread: without it delivery reports of a quiet process
            # would wait, and with them the answers of ad events.
            try:
                now = time.monotonic()
                if now >= next_topic_check and (not topics_ensured() or self._stalled(now)):
                    self._ad_failed = False
                    self._last_topic_check = now
                    if not topics_ensured() or ingest_topics_missing(self.producer):
                        ensure_ingest_topics()
                    next_topic_check = time.monotonic() + TOPIC_CHECK_SECONDS
                self._produce_again(now)
                if self._replay_pending and now >= self._next_replay:
                    self._replay_next_file()
                self.producer.poll(0.1)
                if now >= next_failure_log:
                    self._log_failures()
                    next_failure_log = now + 1.0
                BUFFERED.set(self._in_flight)
            except Exception:
                logger.exception("Kafka poll loop: unexpected error, going on")
                self._stop.wait(0.5)

    def _stalled(self, now: float) -> bool:
        """Whether to ask the broker if the topics are still there: events wait and nothing
        was acknowledged lately, an ad event failed, or it was not asked for a while. (Each
        question blocks this loop while a broker is away, so not at every turn.)"""
        waiting = self._in_flight > 0 and now - self._last_ack > TOPIC_CHECK_SECONDS
        return waiting or self._ad_failed or now - self._last_topic_check > TOPIC_RECHECK_SECONDS

    def _log_failures(self) -> None:
        with self._lock:
            failed, self._failed_rows = self._failed_rows, 0
            waiting = sum(message.rows for _, message in self._retry)
        if failed:
            logger.warning(
                "%d page events not delivered to Kafka yet (%s): producing them again; "
                "%d waiting, %d in the buffer",
                failed,
                self._last_error,
                waiting,
                self._in_flight,
            )

    def _on_page_delivery(self, message: _PageMessage, error: Any, report: Any) -> None:
        # Runs inside poll() or flush() on any thread: an exception would come out of that
        # call (a request's, or the poll thread's), so none may escape.
        try:
            if message.paced:
                self._reported(message)
            if error is None:
                with self._lock:
                    self._in_flight -= message.rows
                    self._delivered += message.rows
                    self._last_ack = time.monotonic()
                if message.acceptance is not None:
                    message.acceptance.message_acknowledged()
                if message.replay is not None:
                    self._replay_delivered(message.replay, message.rows)
                return
            PRODUCE_FAILURES.labels(self.page_topic).inc(message.rows)
            with self._lock:
                self._last_error = str(error)
                self._failed_rows += message.rows
                if self._closing:
                    self._purged.append(message)
                else:
                    self._retry.append((time.monotonic() + RETRY_SECONDS, message))
        except Exception:
            logger.exception("page delivery report of %d events not handled", message.rows)

    def _reported(self, message: _PageMessage) -> None:
        message.paced = False
        with self._lock:
            self._unacknowledged -= 1
            if self._unacknowledged == 0:
                self._caught_up.set()

    def _replay_delivered(self, claim: spool.Claim, rows: int) -> None:
        with self._lock:
            claim.outstanding -= 1
            claim.delivered += rows
            finished = claim.outstanding == 0 and claim in self._replays
            if finished:
                self._replays.remove(claim)
        if finished:
            spool.done(claim)
            spool.REPLAYED.inc(claim.delivered)
            logger.info("spool: replayed %d page events from %s", claim.delivered, claim.path)

    def _produce(self, message: _PageMessage) -> None:
        self.producer.produce(
            self.page_topic,
            value=message.value,
            key=message.key,
            on_delivery=functools.partial(self._on_page_delivery, message),
        )

    def _produce_again(self, now: float, *, all_of_them: bool = False) -> None:
        while True:
            with self._lock:
                if not self._retry or (self._retry[0][0] > now and not all_of_them):
                    return
                _, message = self._retry.popleft()
            try:
                self._produce(message)
            except BufferError:
                with self._lock:  # librdkafka's queue is full: try again in a moment
                    self._retry.appendleft((now + RETRY_SECONDS, message))
                return

    def _replay_next_file(self) -> None:
        """Produce the rows of the next spool file, once the buffer has room for them (a file
        larger than the whole buffer goes when the buffer is empty)."""
        claim = spool.claim_next()
        if claim is None:
            self._replay_pending = False
            return
        with self._lock:
            room = self.capacity - self._in_flight
            if len(claim.rows) > room and self._in_flight > 0:
                spool.release(claim)
                self._next_replay = time.monotonic() + RETRY_SECONDS
                return
            self._in_flight += len(claim.rows)
        by_site: dict[str, list[bytes]] = defaultdict(list)
        for row in claim.rows:
            by_site[essentials_decoder.decode(row).site_id].append(row)
        messages = [
            _PageMessage(b"\n".join(chunk), site.encode(), len(chunk), claim)
            for site, rows in by_site.items()
            for chunk in _message_chunks(rows)
        ]
        claim.outstanding = len(messages)
        with self._lock:
            self._replays.append(claim)
        logger.info("spool: replaying %d page events from %s", len(claim.rows), claim.path)
        for message in messages:
            try:
                self._produce(message)
            except BufferError:
                with self._lock:
                    self._retry.append((time.monotonic() + RETRY_SECONDS, message))

    def submit_page_rows(self, rows: Sequence[bytes], *, key: str) -> Acceptance:
        # Only queued here: the produce thread counts them (once per round rather than per
        # request, in naboria_ingest_events_total) and makes the Kafka messages.
        with self._lock:
            if self._in_flight + len(rows) > self.capacity:
                SINK_REJECTIONS.inc()
                raise SinkFull("event buffer full while Kafka is unreachable")
            self._in_flight += len(rows)
            if not self._pending:
                self._wake.set()
            waiting = self._pending.get(key_bytes := key.encode())
            if waiting is None:
                waiting = self._pending[key_bytes] = ([], Acceptance())
            waiting[0].extend(rows)
        return waiting[1]

    def _produce_forever(self) -> None:
        while True:
            self._wake.wait()
            if self._stop.is_set():
                return  # close() produces what is pending
            try:
                self._produce_pending()
            except Exception:
                # Nothing may end this thread: accepted rows would wait for close().
                logger.exception("Kafka produce loop: unexpected error, going on")
                self._stop.wait(0.5)
            # Batches arriving meanwhile gather until these messages are acknowledged: one
            # message (and one wake-up of each waiting event loop) serves them all.
            self._caught_up.wait(COALESCE_SECONDS)

    def _produce_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
            self._wake.clear()
        for key, (rows, acceptance) in pending.items():
            PAGE_EVENTS_ACCEPTED.inc(len(rows))
            chunks = _message_chunks(rows)
            acceptance.expect_messages(len(chunks))
            for chunk in chunks:
                message = _PageMessage(b"\n".join(chunk), key, len(chunk), None, acceptance, True)
                with self._lock:
                    self._unacknowledged += 1
                    self._caught_up.clear()
                try:
                    self._produce(message)
                except BufferError:  # librdkafka's queue is full: the poll thread retries
                    self._reported(message)
                    with self._lock:
                        self._retry.append((time.monotonic() + RETRY_SECONDS, message))

    def flush(self, timeout: float) -> None:
        """Produce the pending page rows now and wait up to ``timeout`` for their delivery
        reports (tools and tests that read the topic next)."""
        self._produce_pending()
        self.producer.flush(timeout)

    def _serve_delivery_reports(self) -> None:
        # Run waiting delivery callbacks here, on the request's own thread, without blocking:
        # left to the poller thread, each one would take the GIL away from the event loop.
        # The event is accepted whatever happens to another event's report.
        try:
            self.producer.poll(0)
        except Exception:
            logger.exception("serving Kafka delivery reports failed")

    def write_ad_row(self, row: bytes, *, key: str) -> Future[None]:
        durable = _uncancellable_future()

        def on_delivery(error: Any, message: Any) -> None:
            try:
                if error is None:
                    AD_EVENTS_ACCEPTED.inc()
                    durable.set_result(None)
                else:
                    self._ad_failed = True
                    PRODUCE_FAILURES.labels(self.ad_topic).inc()
                    durable.set_exception(SinkUnavailable(str(error)))
            except Exception:
                logger.exception("ad delivery report not handled")

        try:
            self.producer.produce(
                self.ad_topic, value=row, key=key.encode(), on_delivery=on_delivery
            )
        except BufferError as error:
            durable.set_exception(SinkUnavailable(str(error)))
        self._serve_delivery_reports()
        return durable

    def close(self) -> None:
        """Deliver what is buffered for at most INGEST_SHUTDOWN_SECONDS (less once nothing
        moves for SHUTDOWN_STALL_SECONDS: the broker is away), then spool the rest."""
        started = time.monotonic()
        deadline = started + settings.INGEST_SHUTDOWN_SECONDS
        self._stop.set()
        self._wake.set()
        self._caught_up.set()
        self._producing.join(timeout=5)
        self._poller.join(timeout=5)
        self._produce_pending()
        delivered_before = self._delivered
        last_progress, last_in_flight = started, self._in_flight
        while self._in_flight > 0 and time.monotonic() < deadline:
            self._produce_again(time.monotonic(), all_of_them=True)
            self.producer.flush(min(0.2, max(deadline - time.monotonic(), 0.0)))
            now = time.monotonic()
            if self._in_flight < last_in_flight:
                last_progress, last_in_flight = now, self._in_flight
            elif now - last_progress >= SHUTDOWN_STALL_SECONDS:
                break
        with self._lock:
            self._closing = True
        # What librdkafka still holds comes back in delivery reports (purged), with values.
        self.producer.purge(in_queue=True, in_flight=True)
        self.producer.flush(1.0)
        with self._lock:
            left = self._purged + [message for _, message in self._retry]
            self._purged, self._retry = [], deque()
            replays, self._replays = self._replays, []
        delivered = self._delivered - delivered_before
        _spool_leftovers(
            "Kafka",
            _rows_of(left),
            delivered=delivered,
            replays=replays,
            acceptances=_acceptances_of(left),
        )
        BUFFERED.set(0)


def _chunks(rows: list[bytes], size: int) -> list[list[bytes]]:
    return [rows[start : start + size] for start in range(0, len(rows), size)]


def _message_chunks(rows: list[bytes]) -> list[list[bytes]]:
    """``rows`` cut into messages of at most MESSAGE_MAX_ROWS rows and about MESSAGE_MAX_BYTES
    (a row longer than that is a message of its own)."""
    chunks: list[list[bytes]] = [[]]
    size = 0
    for row in rows:
        if chunks[-1] and (
            len(chunks[-1]) >= MESSAGE_MAX_ROWS or size + len(row) > MESSAGE_MAX_BYTES
        ):
            chunks.append([])
            size = 0
        chunks[-1].append(row)
        size += len(row) + 1
    return chunks


def _uncancellable_future() -> Future[None]:
    # A request that stops waiting (its timeout) cancels the asyncio future wrapping this one;
    # marked running, this one cannot be cancelled with it, so resolving it later never
    # raises InvalidStateError in a delivery report or the writer thread.
    durable: Future[None] = Future()
    durable.set_running_or_notify_cancel()
    return durable


def _spool_leftovers(
    path_name: str,
    rows: list[bytes],
    *,
    delivered: int,
    replays: list[spool.Claim],
    acceptances: Sequence[Acceptance] = (),
) -> None:
    """Write what a closing sink could not deliver to the spool, then drop the spool files it
    was replaying (their undelivered rows are in the new file); one log line either way.
    Requests still waiting on those rows learn that they were spooled (kept) or lost."""
    if not rows:
        logger.info(
            "%s sink stopped: %d page events delivered during shutdown, none spooled",
            path_name,
            delivered,
        )
        for claim in replays:
            spool.done(claim)
        return
    try:
        written = spool.write(rows)
    except OSError as error:
        for acceptance in acceptances:
            acceptance.settle(SinkUnavailable(f"not delivered, and not spooled: {error}"))
        logger.exception(
            "%s sink stopped: %d page events delivered during shutdown, %d LOST: the spool "
            "could not be written",
            path_name,
            delivered,
            len(rows),
        )
        return
    for acceptance in acceptances:
        acceptance.settle(None)
    for claim in replays:
        spool.done(claim)
    logger.warning(
        "%s sink stopped: %d page events delivered during shutdown, %d spooled to %s",
        path_name,
        delivered,
        len(rows),
        written,
    )


class DirectSink:
    """The embedded profile's path: batches in this process, inserted by one writer thread.

    Page rows wait for a due batch (``INGEST_BATCH_SIZE`` rows or ``INGEST_BATCH_SECONDS``);
    ad rows are flushed at once together with whatever else is waiting (group commit), and their
    futures resolve after the insert. Rows not inserted when the sink closes are spooled
    (ingest.spool); spool files are inserted by the writer before anything else.
    """

    def __init__(self) -> None:
        self.capacity = settings.INGEST_BUFFER_EVENTS
        self._lock = threading.Condition()
        self._pages: Batch[bytes] = Batch(
            max_size=settings.INGEST_BATCH_SIZE, max_seconds=settings.INGEST_BATCH_SECONDS
        )
        self._ads: list[tuple[bytes, Future[None]]] = []
        self._in_hand: list[bytes] = []  # page rows the writer is inserting now
        self._inserted = 0
        self._closed = False
        self._stop_retrying = threading.Event()
        self._replay_pending = spool.has_pending()
        self._next_replay = 0.0
        # Tables whose deduplication window is repaired before the next insert: before the
        # first, and after a failed one (events.dedup.repair_window).
        self._repair_due = {PAGE_TABLE, AD_TABLE}
        self._writer = threading.Thread(
            target=self._write_forever, name="direct-writer", daemon=True
        )
        self._writer.start()

    def submit_page_rows(self, rows: Sequence[bytes], *, key: str) -> Acceptance:
        with self._lock:
            if len(self._pages) + len(rows) > self.capacity:
                SINK_REJECTIONS.inc()
                raise SinkFull("event buffer full while ClickHouse is not keeping up")
            for row in rows:
                self._pages.add(row)
            PAGE_EVENTS_ACCEPTED.inc(len(rows))
            BUFFERED.set(len(self._pages))
            if self._pages.is_due():
                self._lock.notify()
        # Kept in this process until the batch is due: the embedded profile's promise.
        return Acceptance.settled_now()

    def write_ad_row(self, row: bytes, *, key: str) -> Future[None]:
        durable = _uncancellable_future()
        with self._lock:
            if self._closed:
                durable.set_exception(SinkUnavailable("the direct writer is shut down"))
                return durable
            self._ads.append((row, durable))
            self._lock.notify()
        return durable

    def _write_forever(self) -> None:
        while True:
            if self._replay_pending and time.monotonic() >= self._next_replay:
                self._replay_spool()
            with self._lock:
                while not (self._closed or self._ads or self._pages.is_due()):
                    wait = self._pages.seconds_left()
                    if self._replay_pending:
                        wait = min(wait, self._next_replay - time.monotonic())
                        if wait <= 0:
                            break
                    self._lock.wait(timeout=max(wait, 0.01))
                pages = self._pages.take() if (self._pages.is_due() or self._closed) else []
                ads, self._ads = self._ads, []
                self._in_hand = pages
                closing = self._closed
                BUFFERED.set(len(self._pages))
            written = self._write(pages, ads)
            with self._lock:
                self._in_hand = []
                if written:
                    self._inserted += len(pages)
                else:  # keep them, in order, for the next attempt (or the spool)
                    self._pages.put_back(pages, rows=len(pages))
            if closing:
                return
            if not written:
                self._stop_retrying.wait(1.0)

    def _replay_spool(self) -> None:
        """Insert the rows of every spool file nobody replays; a file is deleted once its rows
        are stored, and tried again in 5 s when ClickHouse refused them."""
        while not self._closed and (claim := spool.claim_next()) is not None:
            try:
                for chunk in _chunks(claim.rows, settings.INGEST_BATCH_SIZE):
                    self._store(PAGE_TABLE, chunk)
            except Exception:
                logger.exception("spool: %s not replayed yet", claim.path)
                spool.release(claim)
                self._next_replay = time.monotonic() + 5.0
                return
            spool.done(claim)
            spool.REPLAYED.inc(len(claim.rows))
            logger.info("spool: replayed %d page events from %s", len(claim.rows), claim.path)
        self._replay_pending = False

    def _write(self, pages: list[bytes], ads: list[tuple[bytes, Future[None]]]) -> bool:
        """Store what is due, each event once; False when the page rows must be tried again."""
        pages_written = True
        if pages:
            try:
                self._store(PAGE_TABLE, pages)
            except Exception:
                logger.exception("direct path: %d page events not inserted yet", len(pages))
                pages_written = False
        if ads:
            try:
                self._store(AD_TABLE, [row for row, _ in ads])
            except Exception as error:
                for _, durable in ads:
                    durable.set_exception(SinkUnavailable(str(error).splitlines()[0]))
            else:
                AD_EVENTS_ACCEPTED.inc(len(ads))
                for _, durable in ads:
                    durable.set_result(None)
        return pages_written

    def _store(self, table: str, rows: list[bytes]) -> None:
        # Rows were checked when accepted; only their keys are read here.
        keys = EventKey.all_of([essentials_decoder.decode(row) for row in rows])
        try:
            if table in self._repair_due:
                dedup.repair_window(table)
                self._repair_due.discard(table)
            store_new_rows(table, rows, keys)
        except Exception:
            # The insert may have happened: the next attempt must see its rows.
            self._repair_due.add(table)
            raise

    def close(self) -> None:
        """Insert everything still waiting (one attempt, at most INGEST_SHUTDOWN_SECONDS),
        then stop the writer; what was not inserted goes to the spool."""
        inserted_before = self._inserted
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._stop_retrying.set()
        self._writer.join(timeout=settings.INGEST_SHUTDOWN_SECONDS)
        with self._lock:
            # An insert still running has an unknown outcome: its rows are spooled too, and
            # stored once all the same (the replay deduplicates).
            left = (self._in_hand if self._writer.is_alive() else []) + self._pages.take()
            BUFFERED.set(0)
        _spool_leftovers("direct", left, delivered=self._inserted - inserted_before, replays=[])


_sink: EventSink | None = None
_sink_lock = threading.Lock()
_exit_hook = threading.Event()


def get_sink() -> EventSink:
    global _sink
    if _sink is None:
        with _sink_lock:
            if _sink is None:
                _sink = KafkaSink() if kafka_client.is_enabled() else DirectSink()
                # Events still buffered when the process exits are delivered or spooled, not
                # dropped: SIGTERM ends the web role's daphne normally, so atexit handlers
                # run. uvicorn re-raises the signal, which no exit hook survives: the ingest
                # role closes the sink in its ASGI lifespan shutdown (naboria.asgi).
                if not _exit_hook.is_set():
                    atexit.register(reset_sink)
                    _exit_hook.set()
    return _sink


def reset_sink() -> None:
    """Deliver (or spool) and forget the sink (process shutdown, tests that switch profiles)."""
    global _sink
    with _sink_lock:
        if _sink is not None:
            _sink.close()
        _sink = None
