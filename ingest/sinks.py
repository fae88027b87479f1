"""Where accepted events go: Kafka when it is configured, else straight to ClickHouse.

Both sinks offer the same two calls:

- ``submit_page_rows(rows, key=site)``: fire-and-forget (on Kafka, one message holding the
  batch's rows, newline-separated). Raises ``SinkFull`` when the bounded
  in-memory buffer (librdkafka's queue while the broker is away, or the direct writer's
  pending batch) cannot take the whole batch, so the endpoint answers 503 and nothing is
  half-accepted.
- ``write_ad_row(row, key=site)``: returns a future resolved once the row is durable (Kafka
  delivery report with acks=all, or the ClickHouse insert in the direct path); it fails with
  ``SinkUnavailable`` otherwise.

Entry point: ``get_sink()`` (one per process, built on first use); ``reset_sink()`` for tests.
"""

from __future__ import annotations

import atexit
import functools
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, Protocol

from django.conf import settings
from prometheus_client import Counter, Gauge

from events import dedup
from events.dedup import EventKey
from events.rows import essentials_decoder
from ingest.batching import Batch
from ingest.storage import store_new_rows
from ingest.topics import AD, PAGE, ensure_ingest_topics
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
PAGE_EVENTS_ACCEPTED = EVENTS_ACCEPTED.labels(PAGE_TABLE)
AD_EVENTS_ACCEPTED = EVENTS_ACCEPTED.labels(AD_TABLE)


class SinkFull(Exception):
    """The in-memory buffer cannot take this batch; the client should retry later."""


class SinkUnavailable(Exception):
    """The event could not be made durable."""


class EventSink(Protocol):
    def submit_page_rows(self, rows: Sequence[bytes], *, key: str) -> None: ...

    def write_ad_row(self, row: bytes, *, key: str) -> Future[None]: ...

    def close(self) -> None: ...


class KafkaSink:
    """Produces to the page and ad topics with the process's one idempotent producer."""

    def __init__(self) -> None:
        self.producer = kafka_client.get_producer()
        self.page_topic = kafka_client.topic_name(PAGE)
        self.ad_topic = kafka_client.topic_name(AD)
        self.capacity = settings.INGEST_BUFFER_EVENTS
        self._lock = threading.Lock()
        self._in_flight = 0  # page events handed to the producer and not yet acknowledged
        self._stop = threading.Event()
        # Delivery reports are served by poll(): requests serve them as they go, and this
        # thread keeps them flowing when no request comes. It also creates the topics, so a
        # broker that is slow or away never blocks the request (and its event loop) that
        # happened to build the sink; messages produced meanwhile wait in librdkafka.
        self._poller = threading.Thread(target=self._poll_forever, name="kafka-poll", daemon=True)
        self._poller.start()

    def _poll_forever(self) -> None:
        next_topic_check: float | None = 0.0
        while not self._stop.is_set():
            if next_topic_check is not None and time.monotonic() >= next_topic_check:
                next_topic_check = None if ensure_ingest_topics() else time.monotonic() + 5.0
            self.producer.poll(0.1)
            BUFFERED.set(self._in_flight)

    def _on_page_delivery(self, rows: int, error: Any, message: Any) -> None:
        with self._lock:
            self._in_flight -= rows
        if error is not None:
            PRODUCE_FAILURES.labels(self.page_topic).inc(rows)
            logger.error("%d page events not delivered to Kafka: %s", rows, error)

    def submit_page_rows(self, rows: Sequence[bytes], *, key: str) -> None:
        # One message per accepted batch (rows separated by newlines): one produce call and
        # one delivery report per request instead of one per event.
        with self._lock:
            if self._in_flight + len(rows) > self.capacity:
                SINK_REJECTIONS.inc()
                raise SinkFull("event buffer full while Kafka is unreachable")
            self._in_flight += len(rows)
        try:
            self.producer.produce(
                self.page_topic,
                value=b"\n".join(rows),
                key=key.encode(),
                on_delivery=functools.partial(self._on_page_delivery, len(rows)),
            )
        except BufferError as error:
            with self._lock:
                self._in_flight -= len(rows)
            SINK_REJECTIONS.inc()
            raise SinkFull(str(error)) from error
        PAGE_EVENTS_ACCEPTED.inc(len(rows))
        self._serve_delivery_reports()

    def _serve_delivery_reports(self) -> None:
        # Run waiting delivery callbacks here, on the request's own thread, without blocking:
        # left to the poller thread, each one would take the GIL away from the event loop.
        self.producer.poll(0)

    def write_ad_row(self, row: bytes, *, key: str) -> Future[None]:
        durable: Future[None] = Future()

        def on_delivery(error: Any, message: Any) -> None:
            if error is None:
                AD_EVENTS_ACCEPTED.inc()
                durable.set_result(None)
            else:
                PRODUCE_FAILURES.labels(self.ad_topic).inc()
                durable.set_exception(SinkUnavailable(str(error)))

        try:
            self.producer.produce(
                self.ad_topic, value=row, key=key.encode(), on_delivery=on_delivery
            )
        except BufferError as error:
            durable.set_exception(SinkUnavailable(str(error)))
        self._serve_delivery_reports()
        return durable

    def close(self) -> None:
        self._stop.set()
        self._poller.join(timeout=2)
        self.producer.flush(10)


class DirectSink:
    """The embedded profile's path: batches in this process, inserted by one writer thread.

    Page rows wait for a due batch (``INGEST_BATCH_SIZE`` rows or ``INGEST_BATCH_SECONDS``);
    ad rows are flushed at once together with whatever else is waiting (group commit), and their
    futures resolve after the insert.
    """

    def __init__(self) -> None:
        self.capacity = settings.INGEST_BUFFER_EVENTS
        self._lock = threading.Condition()
        self._pages: Batch[bytes] = Batch(
            max_size=settings.INGEST_BATCH_SIZE, max_seconds=settings.INGEST_BATCH_SECONDS
        )
        self._ads: list[tuple[bytes, Future[None]]] = []
        self._closed = False
        self._stop_retrying = threading.Event()
        # Tables whose deduplication window is repaired before the next insert: before the
        # first, and after a failed one (events.dedup.repair_window).
        self._repair_due = {PAGE_TABLE, AD_TABLE}
        self._writer = threading.Thread(
            target=self._write_forever, name="direct-writer", daemon=True
        )
        self._writer.start()

    def submit_page_rows(self, rows: Sequence[bytes], *, key: str) -> None:
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

    def write_ad_row(self, row: bytes, *, key: str) -> Future[None]:
        durable: Future[None] = Future()
        with self._lock:
            if self._closed:
                durable.set_exception(SinkUnavailable("the direct writer is shut down"))
                return durable
            self._ads.append((row, durable))
            self._lock.notify()
        return durable

    def _write_forever(self) -> None:
        while True:
            with self._lock:
                while not (self._closed or self._ads or self._pages.is_due()):
                    self._lock.wait(timeout=max(self._pages.seconds_left(), 0.01))
                pages = self._pages.take() if (self._pages.is_due() or self._closed) else []
                ads, self._ads = self._ads, []
                closing = self._closed
                BUFFERED.set(len(self._pages))
            if not self._write(pages, ads) and not closing:
                with self._lock:  # keep them, in order, for the next attempt
                    self._pages.put_back(pages, rows=len(pages))
                self._stop_retrying.wait(1.0)
            if closing:
                return

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
        """Flush everything still waiting, then stop the writer."""
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._stop_retrying.set()
        self._writer.join(timeout=30)


_sink: EventSink | None = None
_sink_lock = threading.Lock()


def get_sink() -> EventSink:
    global _sink
    if _sink is None:
        with _sink_lock:
            if _sink is None:
                _sink = KafkaSink() if kafka_client.is_enabled() else DirectSink()
                # Events still buffered when the process exits are flushed, not dropped.
                atexit.register(reset_sink)
    return _sink


def reset_sink() -> None:
    """Flush and forget the sink (process shutdown, tests that switch profiles)."""
    global _sink
    with _sink_lock:
        if _sink is not None:
            _sink.close()
        _sink = None
