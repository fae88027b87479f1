"""The product's real ClickHouse HTTP code path against the ClickHouse HTTP stand-in
(scripts/clickhouse_http_standin.py, a test-only server over chdb): migrations, raw inserts,
deduplication lookups (bound parameters in the URL and, when long, as form fields), reports,
errors with their ClickHouse codes, sessions, several OS processes at once, and a stand-in
killed and started again on the same data folder."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import clickhouse_connect
import lz4.frame  # type: ignore[import-untyped]
import pytest
from backports import zstd
from clickhouse_connect.driver.exceptions import DatabaseError
from django.test import override_settings

from analytics import clickhouse_migrations, session_facts
from analytics.reports import traffic
from analytics.reports.query import Period, ReportQuery
from events import dedup
from events.dedup import EventKey
from events.rows import PageRow, clickhouse_time, encoder, essentials_decoder
from ingest import storage
from naboria import clickhouse
from scripts.clickhouse_http_standin import start_clickhouse_standin

pytestmark = [pytest.mark.clickhouse]

DATABASE = "naboria_standin"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Standin:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def start(data_dir: Path, *, port: int | None = None) -> Standin:
    log = data_dir.parent / f"{data_dir.name}.log"
    process, url = start_clickhouse_standin(data_dir, log, port=port)
    return Standin(process, url, log)


@contextmanager
def product_on(url: str) -> Iterator[None]:
    """The product's ClickHouse settings pointed at ``url`` (its HTTP client path)."""
    with override_settings(CLICKHOUSE_URL=url, CLICKHOUSE_DATABASE=DATABASE):
        clickhouse.reset()
        try:
            yield
        finally:
            clickhouse.reset()


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standin]:
    server = start(tmp_path_factory.mktemp("standin") / "clickhouse")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def migrated(standin: Standin) -> Iterator[list[str]]:
    """The product on the stand-in, every ClickHouse migration applied through it; the names
    applied."""
    with product_on(standin.url):
        yield clickhouse_migrations.apply_pending()


def encoded_rows(site_id: str, count: int) -> list[bytes]:
    now = int(time.time() * 1000)
    return [
        encoder.encode(
            PageRow(
                event_id=str(uuid.uuid4()),
                site_id=site_id,
                timestamp=clickhouse_time(now - 60_000 + index),
                received_at=clickhouse_time(now),
                event_type="pageview",
                visitor_id=f"v{index % 7}",
                consent_state="none",
                pathname=f"/p{index % 3}",
                url=f"https://example.com/p{index % 3}",
                retention_days=30,
            )
        )
        for index in range(count)
    ]


def keys_of(rows: list[bytes]) -> list[EventKey]:
    return [EventKey.of(essentials_decoder.decode(row)) for row in rows]


def stored_count(site_id: str) -> int:
    return int(
        clickhouse.get_client().command(
            "SELECT count() FROM page_events WHERE site_id = {s:String}", parameters={"s": site_id}
        )
    )


def test_the_migrations_apply_through_the_standin(migrated):
    assert migrated == [migration.name for migration in clickhouse_migrations.discover()]
    assert clickhouse_migrations.apply_pending() == []  # recorded: nothing applied twice
    tables = {row[0] for row in clickhouse.get_client().query("SHOW TABLES").result_rows}
    assert {"page_events", "ad_events", "event_id_window", "session_facts"} <= tables


@pytest.mark.parametrize("count", [40, 400], ids=["ids-in-url", "ids-in-form"])
def test_rows_are_stored_once_and_read_back(migrated, count):
    """clickhouse-connect sends the packed ids of a lookup in the URL, or as a multipart form
    field once they are longer than 4 kB (more than 128 ids): both reach the engine."""
    site_id = f"standin-{uuid.uuid4().hex[:8]}"
    rows = encoded_rows(site_id, count)
    assert storage.store_new_rows("page_events", rows, keys_of(rows)) == count
    assert stored_count(site_id) == count
    assert dedup.stored_keys("page_events", keys_of(rows)) == set(keys_of(rows))
    assert storage.store_new_rows("page_events", rows, keys_of(rows)) == 0  # all known
    more = encoded_rows(site_id, 3)
    assert storage.store_new_rows("page_events", rows + more, keys_of(rows + more)) == 3
    assert stored_count(site_id) == count + 3


def test_reports_read_what_was_stored(migrated):
    site_id = f"report-{uuid.uuid4().hex[:8]}"
    storage.insert_rows("page_events", encoded_rows(site_id, 30))
    today = datetime.now(UTC).date()
    query = ReportQuery(site_id=site_id, period=Period(today - timedelta(days=1), today, "UTC"))

    def pageviews_and_pages() -> tuple[int, dict[str, int]]:
        pages = traffic.breakdown(query, dimension="pages")["results"]
        by_page = {row["value"]: row["pageviews"] for row in pages}
        return traffic.overview(query)["period"]["pageviews"], by_page

    expected = (30, {"/p0": 10, "/p1": 10, "/p2": 10})
    assert pageviews_and_pages() == expected
    assert session_facts.refresh() >= 1  # the facts rebuilt through inserts and REPLACE PARTITION
    assert pageviews_and_pages() == expected


def test_a_refused_query_raises_with_its_clickhouse_error_code(migrated):
    client = clickhouse.get_client()
    with pytest.raises(DatabaseError) as unknown_table:
        client.query("SELECT * FROM no_such_table")
    assert unknown_table.value.code == 60  # UNKNOWN_TABLE
    with pytest.raises(DatabaseError) as syntax:
        client.command("SELEC 1")
    assert syntax.value.code == 62  # SYNTAX_ERROR
    with pytest.raises(DatabaseError) as bad_row:
        storage.insert_rows("page_events", [b'{"event_id": "not an id"}'])
    assert bad_row.value.code == 376  # CANNOT_PARSE_UUID: a permanent error, unlike a timeout
    clickhouse.ping()  # the client goes on working


def raw_request(
    standin: Standin,
    body: bytes,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", standin.port, timeout=30)
    try:
        connection.request("POST", f"/?{urlencode(query or {})}", body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_the_http_answers_carry_what_clients_read(migrated, standin):
    status, headers, body = raw_request(
        standin, b"SELECT * FROM no_such_table", {"database": DATABASE, "query_id": "q-1"}
    )
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (404, "60")
    assert body.startswith(b"Code: 60. DB::Exception: ")
    assert headers["X-ClickHouse-Query-Id"] == "q-1"

    status, headers, body = raw_request(standin, b"SELECT {n:UInt8} + 1 AS x", {"param_n": "41"})
    assert (status, body, headers["X-ClickHouse-Format"]) == (200, b"42\n", "TabSeparated")
    assert headers["X-ClickHouse-Timezone"]
    status, headers, body = raw_request(standin, b"SELECT 1 AS x FORMAT JSONEachRow")
    assert (body, headers["X-ClickHouse-Format"]) == (b'{"x":1}\n', "JSONEachRow")

    for encoding, compress in (
        ("gzip", gzip.compress),
        ("zstd", zstd.compress),
        ("lz4", lambda data: lz4.frame.compress(data[:6]) + lz4.frame.compress(data[6:])),
    ):
        status, _, body = raw_request(
            standin, compress(b"SELECT 7"), headers={"Content-Encoding": encoding}
        )
        assert (status, body) == (200, b"7\n"), encoding

    status, headers, _ = raw_request(
        standin, b"CREATE TABLE IF NOT EXISTS standin_t (n UInt8) ENGINE = Memory"
    )
    assert status == 200
    assert "X-ClickHouse-Format" not in headers  # no result: command() returns a summary
    status, headers, _ = raw_request(
        standin, b"1\n2\n3\n", {"query": "INSERT INTO standin_t FORMAT TSV"}
    )
    assert json.loads(headers["X-ClickHouse-Summary"])["written_rows"] == "3"


def test_sessions_keep_their_state_and_refuse_concurrent_use(migrated, standin):
    session = f"s-{uuid.uuid4()}"
    first = clickhouse_connect.get_client(dsn=standin.url, session_id=session)
    first.command("CREATE TEMPORARY TABLE scratch (n UInt8)")
    first.command("INSERT INTO scratch VALUES (1), (2)")
    first.command("SET max_threads = 1")
    assert first.command("SELECT count() FROM scratch") == 2
    assert first.command("SELECT getSetting('max_threads')", settings={"max_threads": 3}) == 3
    assert first.command("SELECT getSetting('max_threads')") == 1  # a query's setting ends with it
    other = clickhouse_connect.get_client(dsn=standin.url, autogenerate_session_id=True)
    with pytest.raises(DatabaseError):
        other.command("SELECT count() FROM scratch")  # another session: no such table

    same = clickhouse_connect.get_client(dsn=standin.url, session_id=session)
    slow = threading.Thread(target=first.command, args=("SELECT sleep(2)",))
    slow.start()
    time.sleep(0.5)
    with pytest.raises(DatabaseError) as locked:
        same.command("SELECT 1")
    slow.join()
    assert locked.value.code == 373  # SESSION_IS_LOCKED
    assert same.command("SELECT count() FROM scratch") == 2


def test_queries_of_several_clients_run_at_the_same_time(migrated):
    slow_seconds: list[float] = []
    slow_client = clickhouse.new_client(database=DATABASE)

    def slow() -> None:
        started = time.perf_counter()
        # 1.5 s whatever the machine's speed (a CPU-bound query ran 0.47 s on a quiet one).
        slow_client.command("SELECT sum(sleepEachRow(0.01)) FROM numbers(150)")
        slow_seconds.append(time.perf_counter() - started)

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.1)
    quick: list[float] = []
    while thread.is_alive():
        started = time.perf_counter()
        clickhouse.ping()
        quick.append(time.perf_counter() - started)
    thread.join()
    assert slow_seconds[0] > 0.5  # meaningful only if it outlasted many pings
    # One at a time, the first ping would have waited for the whole slow query. The median,
    # not the maximum: the machine's two cores are shared with whatever else runs.
    assert len(quick) >= 5, (len(quick), slow_seconds)
    assert sorted(quick)[len(quick) // 2] < slow_seconds[0] / 5


def write_and_read(site_id: str, other_site: str, ready_dir: str) -> None:
    """One OS process of test_two_processes_write_and_read_at_once (after django.setup())."""
    Path(ready_dir, site_id).touch()
    deadline = time.monotonic() + 60
    while len(os.listdir(ready_dir)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # both processes start writing together
    started = time.time()
    seen_other: list[int] = []
    previous: list[bytes] = []
    for batch in range(10):
        rows = encoded_rows(site_id, 200)
        # The batch before is sent again with it, as a retrying writer would: stored once.
        assert storage.store_new_rows("page_events", previous + rows, keys_of(previous + rows))
        assert stored_count(site_id) == 200 * (batch + 1)
        seen_other.append(stored_count(other_site))
        previous = rows
    print(json.dumps({"started": started, "finished": time.time(), "seen_other": seen_other}))


CHILD = (
    "import sys, django; django.setup(); "
    "from tests.integration.test_clickhouse_http_standin import write_and_read; "
    "write_and_read(*sys.argv[1:])"
)


def test_two_processes_write_and_read_at_once(migrated, standin, tmp_path):
    sites = [f"proc-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "naboria.settings_test",
        "CLICKHOUSE_URL": standin.url,
        "CLICKHOUSE_DATABASE": DATABASE,
    }
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, site, other, str(tmp_path)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for site, other in (sites, sites[::-1])
    ]
    outcomes = []
    for child in children:
        out, err = child.communicate(timeout=240)
        assert child.returncode == 0, err.decode()[-3000:]
        outcomes.append(json.loads(out.decode().strip().splitlines()[-1]))
    first, second = outcomes
    # Their writing overlapped: each started before the other finished.
    assert first["started"] < second["finished"]
    assert second["started"] < first["finished"]
    assert [stored_count(site) for site in sites] == [2000, 2000]
    assert all(seen == sorted(seen) for seen in (first["seen_other"], second["seen_other"]))


def test_a_killed_standin_is_unavailable_and_keeps_its_data_when_restarted(tmp_path):
    server = start(tmp_path / "clickhouse")
    try:
        with product_on(server.url):
            clickhouse_migrations.apply_pending()
            site_id = f"kill-{uuid.uuid4().hex[:8]}"
            rows = encoded_rows(site_id, 25)
            assert storage.store_new_rows("page_events", rows, keys_of(rows)) == 25
            server.process.kill()
            server.process.wait()
            with pytest.raises(clickhouse.ClickHouseUnavailable):
                clickhouse.ping()
            server = start(tmp_path / "clickhouse", port=server.port)
            # The same client, where it expects ClickHouse: it reconnects.
            clickhouse.ping()
            assert stored_count(site_id) == 25
            assert storage.store_new_rows("page_events", rows, keys_of(rows)) == 0
            assert clickhouse_migrations.apply_pending() == []
    finally:
        server.stop()
