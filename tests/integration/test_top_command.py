"""``manage.py top`` against real services and real traffic: events posted over HTTP to the
whole application (in this process, and as a web process of its own), drained from Kafka into
ClickHouse, and the frame showing them; the drain's lag gauge and its metrics port."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings
from prometheus_client import REGISTRY

from analytics.metrics import REALTIME_VISITORS, WAIT_SECONDS
from analytics.reports.traffic import realtime, realtime_visitors_by_site
from ingest.drain import DrainRunner
from ingest.selectors import forget_site_configs
from ingest.sinks import KafkaSink, get_sink, reset_sink
from naboria import clickhouse
from naboria.management.top import Source, read_sample
from naboria.metrics import serve_metrics
from scripts.test_services import free_port
from sites.models import Site
from tests.factories import SiteFactory
from tests.helpers import eventually
from tests.tracking_client import TrackingClient
from tests.unit.test_enrichment import GOOGLEBOT, WINDOWS_CHROME

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.clickhouse,
    pytest.mark.postgres,
    pytest.mark.usefixtures("clickhouse_schema"),
]

ROOT = Path(__file__).resolve().parents[2]
PAGE = "https://example.com/"


@pytest.fixture
def own_topics() -> Iterator[str]:
    """Topics and drain groups of this test alone, so the lag it reads is its own."""
    prefix = f"top-{uuid.uuid4().hex[:8]}."
    forget_site_configs()
    with override_settings(
        KAFKA_TOPIC_PREFIX=prefix, DRAIN_GROUP_ID=f"{prefix}drain", INGEST_BATCH_SECONDS=0.2
    ):
        reset_sink()
        yield prefix
        reset_sink()


def post(base: str, site: str, events: int, *, token: str = "") -> int:
    body = json.dumps(
        {
            "site": site,
            "events": [
                {"type": "pageview", "url": f"https://example.com/top/{uuid.uuid4().hex[:6]}"}
                for _ in range(events)
            ],
        }
    ).encode()
    request = urllib.request.Request(
        f"{base}/collect",
        data=body,
        method="POST",
        headers={"content-type": "application/json", "user-agent": WINDOWS_CHROME},
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


class Traffic:
    """Posts a few events every 100 ms while a frame is read."""

    def __init__(self, base: str, site: str) -> None:
        self.base, self.site = base, site
        self.stop = threading.Event()
        self.accepted = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.1):
            if post(self.base, self.site, 3) == 202:
                self.accepted += 3

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def top(*arguments: str) -> str:
    output = io.StringIO()
    call_command("top", "--once", *arguments, stdout=output)
    return output.getvalue()


def number(pattern: str, text: str) -> float:
    match = re.search(pattern, text, re.MULTILINE)
    assert match, (pattern, text)
    return float(match.group(1).replace(",", ""))


def stored(site: str) -> int:
    return int(
        clickhouse.get_client()
        .query("SELECT count() FROM page_events WHERE site_id = {s:String}", parameters={"s": site})
        .result_rows[0][0]
    )


def test_top_once_shows_the_traffic_of_a_running_installation(server, site, own_topics):
    runner = DrainRunner()
    runner.start()
    try:
        assert post(server, site.public_id, 20) == 202
        assert post(server, "no-such-site", 1) == 404  # a refused batch
        deadline = time.monotonic() + 60
        while stored(site.public_id) < 20:
            assert time.monotonic() < deadline, "the drain did not store the events"
            time.sleep(0.2)
        REALTIME_VISITORS.forget()
        with Traffic(server, site.public_id) as traffic:
            remote = top("--url", f"web={server}/metrics", "--interval", "2")
            local = top("--url", f"web={server}/metrics", "--visitors", "local")
        assert traffic.accepted > 0
    finally:
        runner.stop()

    # The events posted during the frame's interval, as a rate; all of them in the total.
    assert number(r"events accepted ([\d,.]+)/s", remote) > 0
    assert number(r"^web\s+[\d,.]+ \(total ([\d,.]+)\)", remote) >= 20
    assert number(r"^web\s+\S+ \(total [\d,.]+\)\s+[\d,.]+ \(total ([\d,.]+)\)", remote) >= 1
    assert number(r"^  page-events: ([\d,.]+)$", remote) > 0  # drain rows/s
    assert re.search(r"^  page-events\[\d+\]: [\d,]+$", remote, re.MULTILINE), remote
    assert number(r"^  page_events: ([\d,]+) inserts, mean [\d.]+ ms", remote) >= 1
    # Realtime visitors: the web role's gauge over --url, the report's query with --visitors
    # local (with the site's name); the one visitor who posted them.
    assert f"\n  {site.public_id}: 1\n" in remote
    assert f"\n  {site.name} ({site.public_id}): 1\n" in local


def child_environment(tmp_path: Path, topic_prefix: str, **variables: str) -> dict[str, str]:
    """A Naboria process of its own on this suite's services and test database, reading the
    topics of this test; its ClickHouse is this process's embedded one, which only one process
    can open, so it gets an address where nothing listens."""
    test_database = f"/{connection.settings_dict['NAME']}"
    return {
        **{key: value for key, value in os.environ.items() if key != "METRICS_TOKEN"},
        "DJANGO_SETTINGS_MODULE": "naboria.settings",
        "DATABASE_URL": urlsplit(os.environ["DATABASE_URL"])._replace(path=test_database).geturl(),
        "KAFKA_TOPIC_PREFIX": topic_prefix,
        "DRAIN_GROUP_ID": f"{topic_prefix}drain",
        "CLICKHOUSE_URL": f"http://127.0.0.1:{free_port()}",
        "NABORIA_STARTUP_CHECKS": "false",
        "NABORIA_VAR_DIR": str(tmp_path),
        **variables,
    }


@pytest.mark.redis
def test_top_reads_a_web_process_of_its_own_with_the_metrics_token(
    transactional_db, site, own_topics, tmp_path
):
    port = free_port()
    environment = child_environment(tmp_path, own_topics, METRICS_TOKEN="top-secret")
    log = tmp_path / "web.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "naboria.web", "-b", "127.0.0.1", "-p", str(port),
             "naboria.asgi:application"],
            cwd=ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while read_sample(Source("web", f"{base}/metrics")).error not in ("HTTP 401 Unauthorized",):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        assert post(base, site.public_id, 10) == 202, log.read_text()

        refused = top("--url", f"web={base}/metrics", "--interval", "0.5", "--token", "")
        assert "web   unreadable: HTTP 401 Unauthorized" in refused
        with Traffic(base, site.public_id) as traffic:
            frame = top("--url", f"web={base}/metrics", "--token", "top-secret")
        assert traffic.accepted > 0
    finally:
        process.terminate()
        process.wait(timeout=30)

    assert number(r"events accepted ([\d,.]+)/s", frame) > 0
    assert number(r"^web\s+[\d,.]+ \(total ([\d,.]+)\)", frame) >= 10
    assert re.search(r"^web .* [\d.]+% +[\d.]+ MiB$", frame, re.MULTILINE), frame  # cpu, memory
    assert "realtime visitors by site (last 5 minutes):\n  not exported" in frame


def collect_messages(site: str, messages: int) -> None:
    """``messages`` pageviews, each in a request (and a Kafka message) of its own."""
    for _ in range(messages):
        response = TrackingClient(HTTP_USER_AGENT=WINDOWS_CHROME).post(
            "/collect",
            {"site": site, "events": [{"type": "pageview", "url": PAGE}]},
            content_type="application/json",
        )
        assert response.status_code == 202, response.content
        sink = get_sink()
        assert isinstance(sink, KafkaSink)
        sink.flush(10)


def test_the_drain_reports_its_lag_per_partition(site, own_topics):
    def collect(messages: int) -> None:
        collect_messages(site.public_id, messages)

    def lag() -> float:
        return sum(
            sample.value
            for family in REGISTRY.collect()
            if family.name == "naboria_drain_lag_messages"
            for sample in family.samples
            if sample.labels["consumer"] == "page-events"
        )

    collect(10)
    runner = DrainRunner(["page-events"])
    runner.start()
    deadline = time.monotonic() + 60
    while stored(site.public_id) < 10 or lag() != 0:
        assert time.monotonic() < deadline, (stored(site.public_id), lag())
        time.sleep(0.2)
    runner.stop()  # committed: the lag of a drain that starts now counts from here
    collect(6)
    with override_settings(INGEST_BATCH_SECONDS=120.0, INGEST_BATCH_SIZE=100_000):
        runner = DrainRunner(["page-events"])
        runner.start()
        try:
            # Read, not inserted, not committed: six messages behind.
            deadline = time.monotonic() + 60
            while lag() != 6 or not any(drain.pending for drain in runner.drains):
                assert time.monotonic() < deadline, lag()
                time.sleep(0.2)
        finally:
            runner.stop()
    assert stored(site.public_id) == 16
    assert lag() == 0  # a stopped drain reports no partition


def test_the_drain_metrics_port_asks_for_the_metrics_token():
    port = free_port()
    server = serve_metrics(port=port)
    try:
        source = Source("drain", f"http://127.0.0.1:{port}/metrics")
        with override_settings(METRICS_TOKEN="drain-secret"):
            assert read_sample(source).error == "HTTP 401 Unauthorized"
            sample = read_sample(source, token="drain-secret")
        assert not sample.error
        assert sample.series("process_resident_memory_bytes")
        assert sample.series("naboria_ingest_buffer_capacity_events") == {
            (): settings.INGEST_BUFFER_EVENTS
        }
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.django_db
def test_metrics_answer_in_time_while_clickhouse_does_not(site):
    """A ClickHouse that accepts connections and never answers costs a scrape of /metrics at
    most the realtime gauge's wait, and leaves only that gauge out."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # never accepted: a connection is made, no answer ever comes
    try:
        with override_settings(CLICKHOUSE_URL=f"http://127.0.0.1:{silent.getsockname()[1]}"):
            clickhouse.reset()
            REALTIME_VISITORS.forget()
            started = time.monotonic()
            response = Client().get("/metrics")
            seconds = time.monotonic() - started
    finally:
        silent.close()  # the waiting read fails now and its thread ends
        clickhouse.reset()
        REALTIME_VISITORS.forget()
    assert response.status_code == 200
    assert seconds < WAIT_SECONDS + 1.5
    body = response.content.decode()
    assert "naboria_ingest_buffer_capacity_events" in body
    assert "naboria_realtime_visitors" not in body


def test_top_reads_the_metrics_port_of_a_drain_process(site, own_topics, tmp_path):
    """A drain of its own whose ClickHouse does not answer: it reads the messages and can
    neither store nor commit them, and top shows them as its lag."""
    collect_messages(site.public_id, 4)
    port = free_port()
    log = tmp_path / "drain.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "drain", "--consumer", "page-events",
             "--metrics-port", str(port)],
            cwd=ROOT, env=child_environment(tmp_path, own_topics),
            stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    source = Source("drain", f"http://127.0.0.1:{port}/metrics")
    try:
        deadline = time.monotonic() + 90
        while sum(read_sample(source).series("naboria_drain_lag_messages").values()) != 4:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        frame = top("--url", f"drain=http://127.0.0.1:{port}/metrics", "--interval", "0.5")
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert re.search(r"^  page-events\[\d+\]: 4$", frame, re.MULTILINE), frame
    assert re.search(r"^drain +0 \(total 0\) .* 0 +[\d.]+% +[\d.]+ MiB$", frame, re.MULTILINE), (
        frame
    )


@pytest.mark.django_db
@pytest.mark.usefixtures("direct_path")
def test_realtime_visitors_by_site_are_the_realtime_reports_numbers(organization):
    sites = [cast(Site, SiteFactory(organization=organization)) for _ in range(3)]
    shop, blog, quiet = sites
    visits = [
        (shop, "203.0.113.1", WINDOWS_CHROME),
        (shop, "203.0.113.2", WINDOWS_CHROME),
        (shop, "203.0.113.2", WINDOWS_CHROME),  # the same visitor again
        (shop, "203.0.113.3", GOOGLEBOT),  # bots are not visitors
        (blog, "203.0.113.1", WINDOWS_CHROME),
    ]
    for site, address, agent in visits:
        response = TrackingClient(HTTP_USER_AGENT=agent, REMOTE_ADDR=address).post(
            "/collect",
            {"site": site.public_id, "events": [{"type": "pageview", "url": PAGE}]},
            content_type="application/json",
        )
        assert response.status_code == 202, response.content
    # The direct path's writer stores them within 50 ms; the bot's row may be kept or not.
    assert eventually(lambda: stored(shop.public_id) >= 3 and stored(blog.public_id) == 1)
    eventually(lambda: realtime_visitors_by_site().get(shop.public_id) == 2)

    visitors = realtime_visitors_by_site()
    assert (visitors.get(shop.public_id), visitors.get(blog.public_id)) == (2, 1)
    assert quiet.public_id not in visitors
    for site in (shop, blog):
        assert visitors[site.public_id] == realtime(site_id=site.public_id)["visitors"]
