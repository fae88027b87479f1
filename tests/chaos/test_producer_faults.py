"""Accepted means kept, with real processes. On the Kafka path: the web role (daphne, ``python
-m naboria.web``) against a Tansu broker of the test's own that is killed and restarted empty,
paused (SIGSTOP) and resumed, or away when the server gets SIGTERM. Every event answered 202 is
read back from the page topic with a plain consumer, by the ids the test gave it.

And an ad event whose delivery times out (broker paused): 503, then its retry stores one row
(drained into ClickHouse, counted with plain SQL) and counts the impression once.

On the direct path (no Kafka): SIGTERM while ClickHouse is away spools what the web role
accepted, and its next start inserts it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
from asgiref.sync import async_to_sync
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from django.db import connection
from django.test import override_settings

from ads.counters import get_counters
from ingest.drain import CONSUMERS, Drain
from ingest.selectors import forget_site_configs
from ingest.sinks import reset_sink
from ingest.topics import ensure_ingest_topics
from naboria import clickhouse, kafka_client
from scripts.clickhouse_http_standin import start_clickhouse_standin
from scripts.test_services import ROOT, free_port, tansu_command, wait_for_port
from tests.tracking_client import TrackingClient, delivered_ad_event
from tests.unit.test_enrichment import WINDOWS_CHROME

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.redis]
# Neither Tansu's default for a topic it creates itself (4) nor Naboria's default (6).
PARTITIONS = 3
# The two server roles that accept events: the web role's daphne and the ingest role's uvicorn.
SERVERS = {
    "daphne": [sys.executable, "-m", "naboria.web", "-b", "127.0.0.1", "-p", "{port}",
               "naboria.asgi:application"],
    "uvicorn": [sys.executable, "-m", "uvicorn", "naboria.asgi:application", "--host",
                "127.0.0.1", "--port", "{port}", "--http",
                "naboria.ingest_http:HttpToolsProtocol", "--lifespan", "on"],
}  # fmt: skip
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"


@dataclass
class Broker:
    """A Tansu broker in memory on a port of its own, which the test stops and starts."""

    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                tansu_command(self.port),
                stdout=subprocess.DEVNULL,
                stderr=output,
            )
        wait_for_port(self.port, "tansu")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)
        self.process = None

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    own = Broker(tmp_path / "tansu.log")
    own.start()
    yield own
    if own.process is not None:
        own.signal(signal.SIGCONT)
        own.kill()


@dataclass
class WebRole:
    """A server role (daphne by default) as a process, restartable on the same var folder."""

    env: dict[str, str]
    log: Path
    site: str
    server: str = "daphne"
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.port = free_port()
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [part.format(port=self.port) for part in SERVERS[self.server]],
                cwd=ROOT,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, self.server, timeout=60)

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        self.process = None
        return code

    def post(self, path: str, body: dict[str, Any], timeout: float = 30) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    def collect(self, events: int = 10) -> tuple[int, list[str]]:
        """One batch of pageviews; (status, the ids of its events)."""
        ids = [str(uuid.uuid4()) for _ in range(events)]
        batch = [{"type": "pageview", "url": "https://shop.example/", "id": i} for i in ids]
        return self.post("/collect", {"site": self.site, "events": batch}), ids

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def web(
    request: pytest.FixtureRequest,
    transactional_db: None,
    site: Any,
    broker: Broker,
    tmp_path: Path,
) -> Iterator[WebRole]:
    """The web role (or, parametrized, the ingest role's uvicorn) on the test database and the
    test's broker, with its own var folder (the spool) and topics; its ClickHouse folder is
    never opened (no start-up checks)."""
    database = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/"
        f"{database['NAME']}",
        "KAFKA_BOOTSTRAP_SERVERS": broker.address,
        "KAFKA_TOPIC_PREFIX": f"durability-{uuid.uuid4().hex[:8]}.",
        "KAFKA_TOPIC_PARTITIONS": str(PARTITIONS),
        "NABORIA_VAR_DIR": str(tmp_path / "var"),
        "CLICKHOUSE_URL": f"chdb://{tmp_path / 'clickhouse'}",
        "NABORIA_STARTUP_CHECKS": "false",
        "INGEST_SHUTDOWN_SECONDS": "5",
        "DJANGO_SETTINGS_MODULE": "naboria.settings",
    }
    role = WebRole(env, tmp_path / "web.log", site.public_id, getattr(request, "param", "daphne"))
    role.start()
    yield role
    if role.process is not None:
        role.process.kill()
        role.process.wait(timeout=10)


def sink_holds(web: WebRole, events: int) -> bool:
    """Whether the role's sink holds ``events`` page events (its /metrics gauge, which the poll
    thread updates)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{web.port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    gauge = next(line for line in text.splitlines() if line.startswith("naboria_ingest_buffered"))
    return float(gauge.split()[-1]) >= events


def page_topic(web: WebRole) -> str:
    return f"{web.env['KAFKA_TOPIC_PREFIX']}page"


def read_back(web: WebRole, broker: Broker, expected: set[str], timeout: float = 60) -> set[str]:
    """The event ids in the page topic, read from its start until ``expected`` are all there
    (or the timeout); duplicates are fine (the drain stores each id once)."""
    consumer = Consumer(
        {
            "bootstrap.servers": broker.address,
            "group.id": f"read-{uuid.uuid4().hex}",
            "session.timeout.ms": 6000,
        }
    )
    consumer.assign([TopicPartition(page_topic(web), p, 0) for p in range(PARTITIONS)])
    found: set[str] = set()
    deadline = time.monotonic() + timeout
    try:
        while not expected <= found and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                value = message.value()
                if message.error() or value is None:
                    continue
                for row in value.split(b"\n"):
                    found.add(json.loads(row)["event_id"])
    finally:
        consumer.close()
    return found


def topic_partitions(broker: Broker, topic: str) -> int:
    metadata = AdminClient({"bootstrap.servers": broker.address}).list_topics(timeout=10)
    return len(metadata.topics[topic].partitions)


class Load:
    """Batches posted one after another from a thread, recording the ids of every 202."""

    def __init__(self, web: WebRole) -> None:
        self.web = web
        self.accepted: set[str] = set()
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.is_set():
            status, ids = self.web.collect()
            self.statuses.append(status)
            if status == 202:
                self.accepted.update(ids)
            time.sleep(0.01)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_broker_restarted_empty_under_load_loses_no_accepted_event(web, broker):
    status, before = web.collect()
    assert status == 202
    assert set(before) <= read_back(web, broker, set(before))  # what the first broker held
    with Load(web) as load:
        wait_for(lambda: len(load.statuses) >= 20, 30, "no load")
        broker.kill()
        # What the old broker acknowledged died with it (its loss, not the producer's): only
        # events answered from now on (a batch acknowledged just before the kill has had its
        # answer by then) must all reach the new broker.
        time.sleep(0.2)
        load.accepted.clear()
        answered_before = len(load.statuses)
        time.sleep(0.8)  # batches wait for an acknowledgement while no broker runs
        broker.start()  # empty: no topics, no offsets
        restarted = time.monotonic()
        time.sleep(3.0)
    # A batch that waited longer than INGEST_ACK_TIMEOUT_SECONDS for the new broker is answered
    # 503 (not promised, retried by clients); the others 202 once the new broker has them.
    assert set(load.statuses) <= {202, 503}, load.statuses
    assert 202 in load.statuses[answered_before:], "nothing acknowledged after the restart"
    found = read_back(web, broker, load.accepted)
    print(f"recovered: all accepted events in the new topic {time.monotonic() - restarted:.1f} s")
    assert load.accepted <= found, f"{len(load.accepted - found)} accepted events lost"
    # Created again by the producer with the configured partitions, not by the broker.
    assert topic_partitions(broker, page_topic(web)) == PARTITIONS
    assert "Traceback" not in web.output()


def test_broker_paused_then_resumed_under_load_loses_nothing(web, broker):
    with Load(web) as load:
        wait_for(lambda: len(load.statuses) >= 20, 30, "no load")
        broker.signal(signal.SIGSTOP)
        time.sleep(3.0)
        broker.signal(signal.SIGCONT)
        time.sleep(1.0)
    assert set(load.statuses) == {202}, load.statuses
    found = read_back(web, broker, load.accepted)
    assert load.accepted <= found, f"{len(load.accepted - found)} accepted events lost"
    assert "Traceback" not in web.output()


@pytest.mark.parametrize("web", ["daphne", "uvicorn"], indirect=True)
def test_sigterm_with_the_broker_away_spools_and_the_next_start_replays(web, broker):
    status, first = web.collect()
    assert status == 202
    read_back(web, broker, set(first))
    broker.kill()
    # Twenty batches wait for an acknowledgement that cannot come; SIGTERM comes meanwhile.
    answers: list[tuple[int | str, list[str]]] = []

    def post() -> None:
        try:
            answers.append(web.collect())
        except (urllib.error.URLError, OSError) as error:  # the server went away first
            answers.append((type(error).__name__, []))

    posting = [threading.Thread(target=post) for _ in range(20)]
    for thread in posting:
        thread.start()
    wait_for(lambda: sink_holds(web, 200), 10, "the batches never reached the sink")
    started = time.monotonic()
    # uvicorn ends by raising the signal again, after its lifespan shutdown closed the sink.
    assert web.stop() in (0, -signal.SIGTERM)
    stopped_in = time.monotonic() - started
    for thread in posting:
        thread.join(timeout=30)
    assert "page events delivered during shutdown, 200 spooled to" in web.output(), web.output()
    spool_folder = Path(web.env["NABORIA_VAR_DIR"]) / "spool"
    files = list(spool_folder.glob("page-*.jsonl"))
    assert len(files) == 1
    spooled = {json.loads(line)["event_id"] for line in files[0].read_text().splitlines()}
    accepted = spooled
    # None was promised before it was spooled: an answer is a 503 (no acknowledgement in
    # time), a 202 once spooled, or none at all (the server stopped first).
    assert len(spooled) == 200
    assert all(status in (202, 503) or isinstance(status, str) for status, _ in answers), answers
    promised = {event for status, ids in answers if status == 202 for event in ids}
    assert promised <= spooled
    assert stopped_in < 15, stopped_in

    broker.start()  # empty: the topics are created again
    web.start()
    # Both roles replay at start (their ASGI lifespan startup), before any request comes.
    wait_for(lambda: "spool: replayed 200 page events" in web.output(), 30, web.output())
    assert accepted <= read_back(web, broker, accepted)
    assert list(spool_folder.iterdir()) == []
    status, later = web.collect()
    assert status == 202
    assert set(later) <= read_back(web, broker, set(later))
    assert "Traceback" not in web.output()


@pytest.mark.clickhouse
@pytest.mark.usefixtures("clickhouse_schema")
def test_ad_event_not_delivered_in_time_is_503_and_its_retry_stores_and_counts_once(
    transactional_db, site, broker
):
    prefix = f"ad-{uuid.uuid4().hex[:8]}."
    forget_site_configs()
    with override_settings(KAFKA_BOOTSTRAP_SERVERS=broker.address, KAFKA_TOPIC_PREFIX=prefix):
        kafka_client.reset()
        reset_sink()
        ensure_ingest_topics()  # as `manage.py prepare` does before a role serves
        try:
            impression = uuid.uuid4().hex
            body = delivered_ad_event(site=site.public_id, impression=impression, campaign=4242)
            client = TrackingClient(HTTP_USER_AGENT=WINDOWS_CHROME)  # a person's: counted
            again = delivered_ad_event(
                site=site.public_id, impression=f"{impression}-2", campaign=4242
            )
            json_type = "application/json"
            assert client.post("/ad-event", body, content_type=json_type).status_code == 200
            broker.signal(signal.SIGSTOP)  # acks stop coming: the write times out
            first = client.post("/ad-event", again, content_type=json_type)
            broker.signal(signal.SIGCONT)
            assert first.status_code == 503, first.content
            retry = client.post("/ad-event", again, content_type=json_type)
            assert retry.status_code == 200, retry.content
            kafka_client.get_producer().flush(10)

            drain = Drain(CONSUMERS["ad-events"], stop=threading.Event())
            thread = threading.Thread(target=drain.run)
            thread.start()
            stored = "SELECT count() FROM ad_events WHERE site_id = {s:String}"
            try:
                wait_for(lambda: clickhouse_count(stored, site.public_id) >= 2, 30, "not drained")
                time.sleep(1.0)  # the late delivery of the first attempt, if any, too
            finally:
                drain.stop.set()
                thread.join(timeout=30)
            assert clickhouse_count(stored, site.public_id) == 2  # each impression once
            delivery = async_to_sync(get_counters().campaign_delivery)([4242])[4242]
            assert delivery.lifetime == 2  # and counted once
        finally:
            reset_sink()
            kafka_client.reset()


def clickhouse_count(query: str, site_id: str) -> int:
    return int(clickhouse.get_client().query(query, parameters={"s": site_id}).result_rows[0][0])


@pytest.mark.clickhouse
def test_direct_path_sigterm_with_clickhouse_away_spools_and_the_next_start_inserts(
    transactional_db, site, tmp_path
):
    """The direct path (no Kafka) against a ClickHouse reached over HTTP (the stand-in,
    scripts/clickhouse_http_standin.py): with ClickHouse gone, batches are still answered 202
    and wait in memory; SIGTERM spools them; the next start, with ClickHouse back, inserts
    each event once."""
    standin, url = start_clickhouse_standin(tmp_path / "clickhouse", tmp_path / "ch.log")
    port = int(url.rsplit(":", 1)[1])
    database = connection.settings_dict
    env = {
        **{key: value for key, value in os.environ.items() if key != "KAFKA_BOOTSTRAP_SERVERS"},
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/"
        f"{database['NAME']}",
        "CLICKHOUSE_URL": url,
        "CLICKHOUSE_DATABASE": "naboria",
        "NABORIA_VAR_DIR": str(tmp_path / "var"),
        "NABORIA_STARTUP_CHECKS": "false",
        "INGEST_BATCH_MILLISECONDS": "200",
        "INGEST_SHUTDOWN_SECONDS": "3",
        "DJANGO_SETTINGS_MODULE": "naboria.settings",
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate_clickhouse"], cwd=ROOT, env=env, check=True
    )
    stored_client = clickhouse_connect.get_client(dsn=url, database="naboria")

    def stored() -> list[str]:
        return [
            str(row[0])
            for row in stored_client.query(
                "SELECT event_id FROM page_events WHERE site_id = {site:String}",
                parameters={"site": site.public_id},
            ).result_rows
        ]

    web = WebRole(env, tmp_path / "web.log", site.public_id)
    web.start()
    try:
        status, first = web.collect()
        assert status == 202
        wait_for(lambda: len(stored()) == len(first), 30, web.output())
        standin.kill()
        standin.wait(timeout=10)
        accepted: set[str] = set()
        for _ in range(20):
            status, ids = web.collect()
            assert status == 202
            accepted.update(ids)
        assert web.stop() == 0
        assert "direct sink stopped: 0 page events delivered during shutdown, 200 spooled to" in (
            web.output()
        ), web.output()
        [spooled] = (tmp_path / "var" / "spool").glob("page-*.jsonl")
        assert {json.loads(line)["event_id"] for line in spooled.read_text().splitlines()} == (
            accepted
        )

        standin, _ = start_clickhouse_standin(
            tmp_path / "clickhouse", tmp_path / "ch.log", port=port
        )
        web.start()
        status, later = web.collect()  # daphne builds its sink, which replays, at this request
        assert status == 202
        expected = set(first) | accepted | set(later)
        wait_for(lambda: len(stored()) >= len(expected), 60, web.output())
        rows = stored()
        assert sorted(rows) == sorted(expected)  # each once
    finally:
        if web.process is not None:
            web.process.kill()
        standin.kill()
        standin.wait(timeout=10)
