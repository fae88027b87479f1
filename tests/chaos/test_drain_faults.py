"""Faults injected into real processes: ``manage.py drain`` killed with SIGKILL at random
moments during a backlog, again and again, and a broker that restarts with no state under a
running drain. After each, the events in ClickHouse are exactly the distinct events that were
produced: counted with plain SQL on the raw table and in the refreshed session facts, and
compared with the ids the test made itself.

The drain runs with its own embedded ClickHouse folder (the process that owns a chdb folder is
the only one that can open it), as the Kafka profile did on one machine when the faults were
measured; the counts are read by a process started after the drain has stopped.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from events.rows import PageRow, clickhouse_time, encoder
from scripts.test_services import ROOT, free_port, tansu_command, wait_for_port

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]
PARTITIONS = 6
ROWS_PER_MESSAGE = 20


class Backlog:
    """Page rows produced to a topic of their own, with the duplicates clients and retries
    make: some messages are sent twice, some rows repeat inside a message."""

    def __init__(self, bootstrap: str, prefix: str, *, seed: int) -> None:
        self.bootstrap = bootstrap
        self.topic = f"{prefix}page"
        self.rng = random.Random(seed)  # noqa: S311 (reproducible test data)
        self.event_ids: set[str] = set()
        self.ends: dict[int, int] = {}  # partition -> next offset after what was produced

    def create_topics(self, prefix: str) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        names = [f"{prefix}{kind}" for kind in ("page", "ad", "dead-letter")]
        futures = admin.create_topics([NewTopic(name, PARTITIONS, 1) for name in names])
        for future in futures.values():
            future.result(timeout=15)

    def produce(self, *, messages: int, sites: list[str]) -> None:
        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 20})
        sent: list[tuple[str, bytes]] = []
        now = int(time.time() * 1000)

        def delivered(error: Any, message: Any) -> None:
            assert error is None, error
            partition = message.partition()
            self.ends[partition] = max(self.ends.get(partition, 0), message.offset() + 1)

        for number in range(messages):
            if sent and self.rng.random() < 0.1:
                site, value = self.rng.choice(sent)  # a batch sent again (a client's retry)
            else:
                site = self.rng.choice(sites)
                rows = [self._row(site, now - number) for _ in range(ROWS_PER_MESSAGE)]
                if self.rng.random() < 0.1:
                    rows.append(rows[0])  # the same event twice in one batch
                value = b"\n".join(rows)
                sent.append((site, value))
            producer.produce(self.topic, value=value, key=site.encode(), on_delivery=delivered)
            producer.poll(0)
        assert producer.flush(30) == 0

    def _row(self, site: str, moment_ms: int) -> bytes:
        event_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        self.event_ids.add(event_id)
        return encoder.encode(
            PageRow(
                event_id=event_id,
                site_id=site,
                timestamp=clickhouse_time(moment_ms),
                received_at=clickhouse_time(moment_ms),
                event_type="pageview",
                visitor_id=f"v{self.rng.randrange(500)}",
                consent_state="none",
                pathname=f"/p{self.rng.randrange(50)}",
                url="https://example.com/",
                retention_days=30,
            )
        )


@pytest.fixture
def drain_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a drain with its own ClickHouse folder, topics and consumer group."""
    prefix = f"chaos-{uuid.uuid4().hex[:8]}."
    env = {
        **os.environ,
        "CLICKHOUSE_URL": f"chdb://{tmp_path / 'clickhouse'}",
        "NABORIA_VAR_DIR": str(tmp_path / "var"),
        "KAFKA_TOPIC_PREFIX": prefix,
        "DRAIN_GROUP_ID": f"chaos-{uuid.uuid4().hex[:8]}",
        "INGEST_BATCH_SIZE": "1000",
        "INGEST_BATCH_MILLISECONDS": "200",
        "NABORIA_STARTUP_CHECKS": "false",
        "DJANGO_SETTINGS_MODULE": "naboria.settings",
    }
    manage(env, "migrate_clickhouse")
    return env


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def start_drain(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "manage.py", "drain", "--consumer", "page-events"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def wait_until_consuming(process: subprocess.Popen[bytes], log: Path, runs: int) -> None:
    """Until this run's drain logs that it consumes (the log holds every run's lines)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if log.read_text(errors="replace").count("consuming") >= runs:
            return
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        time.sleep(0.05)
    raise AssertionError("the drain did not start consuming")


def wait_until_committed(env: dict[str, str], backlog: Backlog, timeout: float = 120) -> None:
    """Until the drain's group has committed everything produced (the broker's high watermark
    is not trusted: Tansu's can be wrong)."""
    consumer = Consumer(
        {"bootstrap.servers": backlog.bootstrap, "group.id": f"{env['DRAIN_GROUP_ID']}.page-events"}
    )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            committed = consumer.committed(
                [TopicPartition(backlog.topic, p) for p in backlog.ends], timeout=10
            )
            if all(tp.offset >= backlog.ends[tp.partition] for tp in committed):
                return
            time.sleep(0.5)
    finally:
        consumer.close()
    raise AssertionError("the drain did not commit the whole backlog in time")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0


COUNTS = """
import json
from analytics import session_facts
from naboria import clickhouse
session_facts.refresh()
client = clickhouse.get_client()
raw = client.query("SELECT count(), uniqExact(event_id) FROM page_events").result_rows[0]
ids = [str(row[0]) for row in client.query("SELECT event_id FROM page_events").result_rows]
facts = client.command("SELECT sum(pageviews) FROM session_facts")
print(json.dumps({"rows": raw[0], "distinct": raw[1], "facts": int(facts), "ids": ids}))
"""


def stored(env: dict[str, str]) -> dict[str, Any]:
    return json.loads(manage(env, "shell", "-c", COUNTS).strip().splitlines()[-1])


def assert_exactly(env: dict[str, str], backlog: Backlog) -> None:
    counts = stored(env)
    expected = len(backlog.event_ids)
    assert (counts["rows"], counts["distinct"], counts["facts"]) == (expected,) * 3
    assert set(counts["ids"]) == backlog.event_ids


@pytest.mark.parametrize("seed", [1, 2])
def test_drain_killed_at_random_moments_during_a_backlog_stores_each_event_once(
    drain_env, tmp_path, seed
):
    prefix = drain_env["KAFKA_TOPIC_PREFIX"]
    backlog = Backlog(os.environ["KAFKA_BOOTSTRAP_SERVERS"], prefix, seed=seed)
    backlog.create_topics(prefix)
    backlog.produce(messages=4000, sites=["site-a", "site-b", "site-c"])
    log = tmp_path / "drain.log"
    rng = random.Random(seed)  # noqa: S311 (reproducible test data)
    for run in range(1, 5):
        drain = start_drain(drain_env, log)
        wait_until_consuming(drain, log, run)
        time.sleep(rng.uniform(0.05, 1.5))
        drain.kill()  # SIGKILL: no flush, no commit, no goodbye
        drain.wait(timeout=30)
    drain = start_drain(drain_env, log)
    wait_until_committed(drain_env, backlog)
    stop(drain)
    assert "Traceback" not in log.read_text(errors="replace")
    assert_exactly(drain_env, backlog)


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """A Tansu broker of this test's own (in memory), and a function that restarts it empty."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    command = tansu_command(port)
    state: dict[str, subprocess.Popen[bytes]] = {}

    def start() -> None:
        state["broker"] = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=(tmp_path / "tansu.log").open("ab")
        )
        wait_for_port(port, "tansu")

    def restart_empty() -> None:
        state["broker"].kill()
        state["broker"].wait(timeout=10)
        start()

    start()
    yield address, restart_empty
    state["broker"].kill()
    state["broker"].wait(timeout=10)


def test_broker_restarted_empty_under_a_running_drain_loses_nothing(
    drain_env, tmp_path, own_broker
):
    address, restart_empty = own_broker
    env = {**drain_env, "KAFKA_BOOTSTRAP_SERVERS": address}
    prefix = env["KAFKA_TOPIC_PREFIX"]
    before = Backlog(address, prefix, seed=3)
    before.create_topics(prefix)
    before.produce(messages=500, sites=["site-a", "site-b"])
    log = tmp_path / "drain.log"
    drain = start_drain(env, log)
    wait_until_committed(env, before)
    restart_empty()  # topics, messages and committed offsets are gone
    after = Backlog(address, prefix, seed=4)
    after.create_topics(prefix)
    # More messages than the old topic held: resuming at the old positions would skip some.
    after.produce(messages=1500, sites=["site-a", "site-b"])
    wait_until_committed(env, after, timeout=180)
    stop(drain)
    before.event_ids |= after.event_ids
    assert_exactly(env, before)
