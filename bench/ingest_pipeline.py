"""Benchmarks of the event pipeline (issue 2/6). Prints every figure; see bench/RESULTS.md.

    .venv/bin/python bench/ingest_pipeline.py [--seconds 10] [--servers daphne,uvicorn,uvicorn2]
        [--phases http,drain,queryable,stack] [--drain-rows 200000] [--preload-ids 2000000]

The http and stack phases need wrk and hey: installed with apt-get when missing (as root on
Debian).
Starts Tansu on a free port, prepares a throw-away installation, and measures:

1. POST /collect with 1-event and 20-event batches under wrk (a separate process) with 32 and
   with 256 connections (CONNECTIONS), per HTTP server, next to a trivial ASGI app on the same
   server (bench/noop_asgi.py) as the baseline;
2. latency at half the rate measured with 256 connections (hey, rate-limited);
3. drain throughput (rows/s from Kafka into ClickHouse, deduplicated by event id against a
   window already holding --preload-ids ids) next to a plain insert of the same rows, and to
   the direct path's deduplicated insert (ingest.storage.store_new_rows);
4. time from a 202 to the event being queryable in ClickHouse, under background load;
5. the stack: 1 and 2 again through the production topology of ``make stack`` (scripts/stack.py:
   separate web, ingest, drain, worker and beat processes, ClickHouse over HTTP through its
   stand-in), and 202 -> stored through its drain role.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.test_services import (  # noqa: E402
    embedded_environment,
    free_port,
    prepare_demo,
    start_tansu,
)

USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
UVICORN = [
    "{bin}/uvicorn",
    "--port",
    "{port}",
    # info: each worker says "Started server process" once it has imported the application
    # (requests are not logged: --no-access-log).
    "--log-level",
    "info",
    "--no-access-log",
    "--lifespan",
    "off",
    "{app}",
]
LOAD_TOOLS = ("wrk", "hey")
SERVERS = {
    "daphne": ["{bin}/daphne", "-b", "127.0.0.1", "-p", "{port}", "{app}"],
    "uvicorn": UVICORN,
    "uvicorn2": [*UVICORN, "--workers", "2"],
}
# Workers that must have started before a server is measured (one answering is not enough: the
# other may still be importing Django).
WORKERS = {"uvicorn": 1, "uvicorn2": 2}
STARTED = "Started server process"
WORKER_DIED = "died"  # uvicorn's supervisor: "Child process [pid] died", then starts another


def batch(site: str, events: int) -> str:
    return json.dumps(
        {
            "site": site,
            "events": [
                {
                    "type": "pageview",
                    "url": f"https://localhost/page/{i}?utm_source=bench",
                    "referrer": "https://www.google.com/search?q=naboria",
                }
                for i in range(events)
            ],
        }
    )


class ServerFailed(Exception):
    """A server under test exited or never answered; the message ends with its log."""


class Server:
    """A server under test, ready when it answers HTTP: a listening socket alone is not
    enough (uvicorn's supervisor binds the port for its workers before they have imported
    the application). Its output goes to a log that a failure shows."""

    def __init__(self, kind: str, app: str, env: dict[str, str], logs: Path) -> None:
        self.port = free_port()
        self.kind = kind
        command = [
            part.format(bin=Path(sys.executable).parent, port=self.port, app=app)
            for part in SERVERS[kind]
        ]
        self.log = logs / f"{kind}-{app.partition(':')[0]}-{self.port}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self.url = f"http://127.0.0.1:{self.port}/collect"
        try:
            self._wait_until_answering(timeout=120)
        except ServerFailed:
            self.stop()
            raise

    def _wait_until_answering(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._fail(f"exited with status {self.process.returncode} while starting")
            if WORKER_DIED in self.log.read_text(errors="replace"):
                self._fail("lost a worker while starting")
            if self._answers() and self._workers_started():
                return
            time.sleep(0.2)
        self._fail(f"was not serving with every worker within {timeout:.0f} s")

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(self.url, timeout=5).close()
        except urllib.error.HTTPError:
            return True  # any HTTP answer (a 405 for GET /collect): a worker runs the app
        except OSError:
            return False
        return True

    def _workers_started(self) -> bool:
        workers = WORKERS.get(self.kind)
        return workers is None or self.log.read_text(errors="replace").count(STARTED) >= workers

    def _fail(self, what: str) -> None:
        tail = self.log.read_text(errors="replace").strip().splitlines()[-15:]
        raise ServerFailed(f"{self.kind} {what}; its output ends:\n" + "\n".join(tail))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


def wrk(url: str, body: str, seconds: int, connections: int) -> dict[str, float]:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["User-Agent"] = "{USER_AGENT}"\nwrk.body = {json.dumps(body)}\n'
    )
    output = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    script.unlink()
    refused = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)

    def millis(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    refused_share = int(refused.group(1)) / total if refused else 0.0
    # Only accepted requests count: a 503 (buffer full) is back-pressure, not throughput.
    return {
        "rps": rate * (1 - refused_share),
        "p50": millis("50%"),
        "p99": millis("99%"),
        "refused": refused_share,
    }


def hey(url: str, body: str, seconds: int, rate: float, workers: int = 16) -> dict[str, float]:
    body_file = Path(tempfile.mkstemp(suffix=".json")[1])
    body_file.write_text(body)
    output = subprocess.run(
        [
            "hey",
            "-z",
            f"{seconds}s",
            "-c",
            str(workers),
            "-q",
            f"{rate / workers:.1f}",
            "-m",
            "POST",
            "-T",
            "application/json",
            "-H",
            f"User-Agent: {USER_AGENT}",
            "-D",
            str(body_file),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    body_file.unlink()

    def percentile(p: int) -> float:
        return float(re.search(rf"\b{p}%+ in ([\d.]+) secs", output).group(1)) * 1000  # type: ignore[union-attr]

    achieved = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    return {"rps": achieved, "p50": percentile(50), "p99": percentile(99)}


def http_benchmarks(
    env: dict[str, str], site: str, servers: list[str], seconds: int, logs: Path
) -> tuple[list[str], list[str]]:
    """The result lines, and one line per server that could not be measured (its start-up
    failed: the others are still measured)."""
    lines: list[str] = []
    failures: list[str] = []
    for kind in servers:
        try:
            noop = Server(kind, "bench.noop_asgi:application", env, logs)
            try:
                app = Server(kind, "naboria.asgi:application", env, logs)
            except ServerFailed:
                noop.stop()
                raise
        except ServerFailed as failed:
            failures.append(str(failed))
            print(failures[-1], file=sys.stderr, flush=True)
            continue
        try:
            lines += collect_against_baseline(kind, app.url, noop.url, site, seconds)
        finally:
            noop.stop()
            app.stop()
    return lines, failures


# wrk's connections. A 202 waits for Kafka's acknowledgement (a produce round and a broker
# round trip, 2-7 ms here), so with 32 connections the client, not the server, sets the pace:
# the trivial app made to wait 1 ms for a future settled by another thread serves 7,800 req/s
# with 32 connections and 15,300 with 128 (bench/RESULTS.md run 17). The last count saturates
# both servers, so its ratio is the servers' costs; the 32-connection figure is printed too.
CONNECTIONS = (32, 256)


def collect_against_baseline(
    label: str, app_url: str, noop_url: str, site: str, seconds: int
) -> list[str]:
    """/collect at ``app_url`` with 1- and 20-event batches, next to the trivial ASGI app at
    ``noop_url`` on the same kind of server, for each of CONNECTIONS, and at half the rate
    measured with the most; a line each."""
    lines = []
    for events in (1, 20):
        body = batch(site, events)
        wrk(app_url, body, 3, CONNECTIONS[-1])  # warm up: caches, Kafka metadata, connections
        saturated_rps = 0.0
        for connections in CONNECTIONS:
            baseline = wrk(noop_url, body, seconds, connections)
            measured = wrk(app_url, body, seconds, connections)
            saturated_rps = measured["rps"]  # the last, with the most connections
            lines.append(
                f"{label:9} {events:2}-event batches, {connections:3} connections: "
                f"{measured['rps']:8.0f} accepted req/s "
                f"({measured['refused']:.1%} refused with 503) "
                f"= {measured['rps'] * events:8.0f} events/s, p50 {measured['p50']:.1f} ms, "
                f"p99 {measured['p99']:.1f} ms | trivial ASGI {baseline['rps']:.0f} req/s "
                f"(ratio {measured['rps'] / baseline['rps']:.2f})"
            )
            print(lines[-1], flush=True)
        half = hey(app_url, body, seconds, rate=saturated_rps / 2)
        lines.append(
            f"{label:9} {events:2}-event batches at half load ({half['rps']:.0f} req/s): "
            f"p50 {half['p50']:.1f} ms, p99 {half['p99']:.1f} ms"
        )
        print(lines[-1], flush=True)
    return lines


def stack_benchmark(seconds: int, tracers: int, logs: Path) -> list[str]:
    """/collect through the production topology of ``make stack`` (scripts/stack.py): its
    ingest role (uvicorn) and web role (daphne), each next to the trivial app on the same kind
    of server; then 202 -> stored, for tracers sent to the ingest role under load, through the
    drain role into ClickHouse over HTTP (the chdb stand-in, as no server runs here)."""
    import clickhouse_connect

    from scripts.stack import Stack

    stack = Stack(
        Path(tempfile.mkdtemp(prefix="naboria-bench-stack-")),
        database=f"naboria_bench_{uuid.uuid4().hex[:8]}",
        redis_db=8,
    )
    lines = []
    try:
        stack.start_services()
        site = re.search(r"public id (\w+)", stack.prepare(demo=True))
        assert site, "the demo site was not made"
        stack.start_roles()
        stack.wait_healthy()
        env = stack.environment()
        for kind, url in (("uvicorn", stack.ingest_url), ("daphne", stack.web_url)):
            noop = Server(kind, "bench.noop_asgi:application", env, logs)
            try:
                lines += collect_against_baseline(
                    f"stack {kind}", f"{url}/collect", noop.url, site.group(1), seconds
                )
            finally:
                noop.stop()
        client = clickhouse_connect.get_client(
            dsn=env["CLICKHOUSE_URL"], database=env["CLICKHOUSE_DATABASE"]
        )
        lines.append(
            tracer_delays(
                f"{stack.ingest_url}/collect",
                site.group(1),
                tracers,
                lambda event_id: bool(
                    client.query(
                        "SELECT count() FROM page_events WHERE event_id = {e:UUID}",
                        parameters={"e": event_id},
                    ).result_rows[0][0]
                ),
                "stack: 202 -> stored (drain role, ClickHouse over HTTP)",
            )
        )
        print(lines[-1], flush=True)
    finally:
        stack.stop()
        stack.drop_database()
        shutil.rmtree(stack.directory, ignore_errors=True)
    return lines


def _apt_get(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["apt-get", *arguments],
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )


def ensure_load_tools() -> None:
    """wrk and hey, installed from Debian's archive when missing (a fresh machine has neither);
    the package lists are refreshed only when installing without doing so fails."""
    missing = [tool for tool in LOAD_TOOLS if not shutil.which(tool)]
    if not missing:
        return
    if not shutil.which("apt-get") or os.geteuid() != 0:
        sys.exit(
            f"{', '.join(missing)} missing: run apt-get install -y {' '.join(missing)} as root"
        )
    print(f"installing {', '.join(missing)} with apt-get", flush=True)
    attempt = _apt_get("install", "-y", "--no-install-recommends", *missing)
    if attempt.returncode != 0:
        attempt = _apt_get("update")
        if attempt.returncode == 0:
            attempt = _apt_get("install", "-y", "--no-install-recommends", *missing)
    still_missing = [tool for tool in missing if not shutil.which(tool)]
    if still_missing:
        sys.exit(
            f"could not install {', '.join(still_missing)} with apt-get (exit "
            f"{attempt.returncode}): {attempt.stderr.strip()[-500:]}\n"
            "install them, or leave out --phases http"
        )


def preload_event_ids(count: int) -> None:
    """Fill the deduplication window with ``count`` ids of earlier events of other sites, as a
    running installation's week holds: every lookup of the drain searches among them. The ids
    are version 7 (as the tracker and the server make them), their times spread over 6 days."""
    from naboria import clickhouse

    clickhouse.get_client().command(
        "INSERT INTO event_id_window (event_table, site_id, event_id, timestamp)"
        " SELECT 'page_events', concat('site-', toString(number % 50)),"
        " toUUID(concat(substring(millis, 1, 8), '-', substring(millis, 9, 4), '-7',"
        " substring(toString(generateUUIDv4(number)), 16, 21))), at"
        " FROM (SELECT number, now() - toIntervalSecond(number % 518400) AS at,"
        " leftPad(lower(hex(toUInt64(toUnixTimestamp(at)) * 1000 + number % 1000)), 12, '0')"
        " AS millis FROM numbers({count:UInt64}))",
        parameters={"count": count},
    )


def wait_for_merges(timeout: float = 120.0) -> None:
    """Wait until ClickHouse has merged what it will: no merge running and the number of
    active parts unchanged for a second (merges are picked every few hundred ms, so an empty
    ``system.merges`` alone can fall between two). Each timed run starts on a quiet engine,
    and the merges a run's inserts cause fall into that run, not into the next."""
    from naboria import clickhouse

    client = clickhouse.get_client()
    deadline = time.monotonic() + timeout
    last_parts, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        parts = int(client.command("SELECT count() FROM system.parts WHERE active"))
        if parts != last_parts or client.command("SELECT count() FROM system.merges"):
            last_parts, quiet_since = parts, time.monotonic()
        elif time.monotonic() - quiet_since >= 1.0:
            return
        time.sleep(0.1)


def drain_benchmark(rows: int, batch_size: int) -> list[str]:
    """Rows/s through the drain, next to inserting the same encoded rows directly: plainly (the
    ratio's baseline) and deduplicated as the direct path does."""
    import threading as _threading

    from django.test import override_settings
    from prometheus_client import REGISTRY

    from events.dedup import EventKey
    from events.ids import new_event_id
    from events.rows import PageRow, clickhouse_time, encoder, essentials_decoder
    from ingest.drain import CONSUMERS, Drain
    from ingest.storage import insert_rows, store_new_rows
    from naboria import clickhouse, kafka_client

    now = int(time.time() * 1000)

    def encoded_rows(site: str) -> list[bytes]:
        """The rows of one run: the same content for every run, ids of their own (an id
        stored for another site would be found by every lookup, which real traffic never
        makes it do)."""
        return [
            encoder.encode(
                PageRow(
                    event_id=new_event_id(),
                    site_id=site,
                    timestamp=clickhouse_time(now - i),
                    received_at=clickhouse_time(now),
                    event_type="pageview",
                    visitor_id=f"v{i % 5000}",
                    consent_state="none",
                    pathname=f"/p/{i % 300}",
                    url=f"https://localhost/p/{i % 300}",
                    retention_days=30,
                    browser="Chrome",
                    os="Windows",
                    device_type="desktop",
                    country="FR",
                )
            )
            for i in range(rows)
        ]

    site = f"drain-{uuid.uuid4().hex[:8]}"
    # The baseline: the median of three plain inserts (one alone swings by ±30 % here).
    direct_rates = []
    for attempt in range(3):
        plain = encoded_rows(f"direct-{attempt}-{site}")
        wait_for_merges()
        started = time.perf_counter()
        insert_rows("page_events", plain)
        direct_rates.append(rows / (time.perf_counter() - started))
    direct_rate = statistics.median(direct_rates)
    # The direct path in the same batches as the drain: a lookup, then an insert, per batch.
    deduplicated = encoded_rows(f"dedup-{site}")
    wait_for_merges()
    started = time.perf_counter()
    for start in range(0, rows, batch_size):
        chunk = deduplicated[start : start + batch_size]
        keys = [EventKey.of(essentials_decoder.decode(row)) for row in chunk]
        store_new_rows("page_events", chunk, keys)
    deduplicated_rate = rows / (time.perf_counter() - started)

    encoded = encoded_rows(site)
    # A topic of its own: the HTTP benchmarks left a backlog in the default one.
    prefix = f"drain-bench-{uuid.uuid4().hex[:6]}."
    producer = kafka_client.get_producer()
    topic = f"{prefix}page"
    for start in range(0, rows, 20):  # as ingest produces them: one message per 20-event batch
        producer.produce(topic, value=b"\n".join(encoded[start : start + 20]), key=site.encode())
        producer.poll(0)
    producer.flush(60)
    wait_for_merges()

    def stored() -> int:
        return int(
            clickhouse.get_client()
            .query(
                "SELECT count() FROM page_events WHERE site_id = {s:String}", parameters={"s": site}
            )
            .result_rows[0][0]
        )

    def rows_inserted_total() -> int:
        # The drain's own counter: polling ClickHouse every 50 ms would cost the drain CPU
        # that the plain insert is not charged; the stored count is checked at the end.
        sample = REGISTRY.get_sample_value("naboria_drain_rows_total", {"consumer": "page-events"})
        return int(sample or 0)

    inserted_before = rows_inserted_total()
    with override_settings(
        INGEST_BATCH_SIZE=batch_size,
        INGEST_BATCH_SECONDS=1.0,
        KAFKA_TOPIC_PREFIX=prefix,
        DRAIN_GROUP_ID=prefix,
    ):
        drain = Drain(CONSUMERS["page-events"], stop=_threading.Event())
        thread = _threading.Thread(target=drain.run)
        started = time.perf_counter()
        thread.start()
        first: tuple[float, int] | None = None
        while (seen := rows_inserted_total() - inserted_before) < rows:
            if seen and first is None:
                first = (time.perf_counter(), seen)
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        first = first or (started, 0)
        steady = (rows - first[1]) / (time.perf_counter() - first[0])
        assert stored() == rows, f"{stored()} rows stored, {rows} sent"
        drain.stop.set()
        thread.join()
    line = (
        f"drain, batches of {batch_size} rows: {rows} rows in {elapsed:.2f} s = "
        f"{rows / elapsed:,.0f} rows/s including the group join; {steady:,.0f} rows/s from the "
        f"first insert on | one plain insert of the same rows {direct_rate:,.0f} rows/s (median "
        f"of {', '.join(f'{rate:,.0f}' for rate in direct_rates)}) "
        f"(steady ratio {steady / direct_rate:.2f}) | deduplicated direct inserts in "
        f"batches of {batch_size} {deduplicated_rate:,.0f} rows/s"
    )
    print(line, flush=True)
    return [line]


def tracer_delays(
    url: str, site: str, tracers: int, is_stored: Callable[[str], bool], label: str
) -> str:
    """Seconds from a tracer event's 202 to ``is_stored(event_id)``, for ``tracers`` events
    sent one after another while a background load of about 2,000 events/s runs; one line."""
    from events.ids import new_event_id

    def post(body: bytes) -> int:
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json", "User-Agent": USER_AGENT}
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status)

    stop_load = threading.Event()

    def background_load() -> None:
        body = batch(site, 20).encode()
        while not stop_load.is_set():
            post(body)
            time.sleep(0.01)

    loader = threading.Thread(target=background_load, daemon=True)
    loader.start()
    delays = []
    try:
        time.sleep(8)  # consumer group joined, load running
        for _ in range(tracers):
            event_id = new_event_id()
            event = {"type": "pageview", "url": "https://localhost/tracer", "id": event_id}
            assert post(json.dumps({"site": site, "events": [event]}).encode()) == 202
            accepted = time.perf_counter()
            while not is_stored(event_id):
                time.sleep(0.02)
            delays.append(time.perf_counter() - accepted)
    finally:
        stop_load.set()
        loader.join(timeout=10)
    delays.sort()
    p95 = delays[math.ceil(len(delays) * 0.95) - 1]  # nearest rank
    return (
        f"{label} ({tracers} tracers, ~2,000 events/s background, batches of "
        f"{os.environ.get('INGEST_BATCH_SIZE', '1000')} rows or "
        f"{os.environ.get('INGEST_BATCH_MILLISECONDS', '5000')} ms): "
        f"p50 {statistics.median(delays):.2f} s, p95 {p95:.2f} s, max {delays[-1]:.2f} s"
    )


def queryable_benchmark(
    server_env: dict[str, str], site: str, tracers: int, logs: Path
) -> list[str]:
    """202 -> visible in ClickHouse, with the drain in this process and background load."""
    from django.test import override_settings

    from ingest.drain import DrainRunner
    from naboria import clickhouse

    # Fresh topics: no backlog from the HTTP benchmarks in front of the tracers.
    prefix = f"queryable-{uuid.uuid4().hex[:6]}."
    server = Server(
        "uvicorn",
        "naboria.asgi:application",
        {**server_env, "KAFKA_TOPIC_PREFIX": prefix},
        logs,
    )
    settings_override = override_settings(KAFKA_TOPIC_PREFIX=prefix, DRAIN_GROUP_ID=prefix)
    settings_override.enable()
    runner = DrainRunner(["page-events"])
    runner.start()
    try:
        line = tracer_delays(
            server.url,
            site,
            tracers,
            lambda event_id: bool(
                clickhouse.get_client()
                .query(
                    "SELECT count() FROM page_events"
                    " WHERE site_id = {s:String} AND event_id = {e:UUID}",
                    parameters={"s": site, "e": event_id},
                )
                .result_rows[0][0]
            ),
            "202 -> queryable",
        )
    finally:
        runner.stop()
        server.stop()
        settings_override.disable()
    print(line, flush=True)
    return [line]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--servers", default="daphne,uvicorn,uvicorn2")
    parser.add_argument("--drain-rows", type=int, default=200_000)
    parser.add_argument("--tracers", type=int, default=40)
    parser.add_argument("--phases", default="http,drain,queryable,stack")
    parser.add_argument("--preload-ids", type=int, default=2_000_000)
    options = parser.parse_args()
    phases = set(options.phases.split(","))
    if phases & {"http", "stack"}:
        ensure_load_tools()

    work = Path(tempfile.mkdtemp(prefix="naboria-bench-"))
    (work / "logs").mkdir()
    tansu, bootstrap = start_tansu(work / "tansu.log")
    base_env = embedded_environment(work / "drain", KAFKA_BOOTSTRAP_SERVERS=bootstrap)
    # The web processes never touch ClickHouse on the Kafka path; this process (the drain) owns
    # the one chdb folder that is measured.
    server_env = {
        **base_env,
        "NABORIA_VAR_DIR": str(work / "web"),
        "NABORIA_STARTUP_CHECKS": "false",
        "LOG_LEVEL": "WARNING",
    }
    _, site = prepare_demo(server_env)
    os.environ.update(base_env)

    import django

    django.setup()
    from analytics import clickhouse_migrations

    clickhouse_migrations.apply_pending()
    failures: list[str] = []
    try:
        results = [f"machine: {os.cpu_count()} cores; Python {sys.version.split()[0]}"]
        if "http" in phases:
            lines, failures = http_benchmarks(
                server_env, site, options.servers.split(","), options.seconds, work / "logs"
            )
            results += lines
        if "drain" in phases:
            preload_event_ids(options.preload_ids)
            results.append(f"deduplication window preloaded with {options.preload_ids:,} ids")
            for batch_size in (1_000, 10_000):
                results += drain_benchmark(options.drain_rows, batch_size)
        if "queryable" in phases:
            results += queryable_benchmark(server_env, site, options.tracers, work / "logs")
        if "stack" in phases:
            results += stack_benchmark(options.seconds, options.tracers, work / "logs")
        print("\n".join(["", "summary:", *results, *failures]))
    finally:
        tansu.terminate()
        tansu.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        sys.exit(f"{len(failures)} server(s) could not be measured")


if __name__ == "__main__":
    main()
