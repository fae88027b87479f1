"""Faults injected into the production topology's real processes (scripts/stack.py): web,
ingest, drain, Celery worker and beat as separate processes against PostgreSQL, Redis, Tansu,
secantusdb and the ClickHouse HTTP stand-in (a test-only process that serves ClickHouse's HTTP
interface from chdb, as no ClickHouse server can be installed here; every role reaches it over
HTTP, the code path it takes against a real server).

Each test runs a load of page-event batches against the web and the ingest role while it
injects a fault. The load behaves as the tracker does: a batch that did not get a 202 is sent
again with the same event ids until it does, and a few batches that did are sent again (a
lost answer). Afterwards every event that got a 202 must be stored exactly once — plain SQL
on the raw table, by event id — and the session facts (the rollup the reports read) must count
exactly those pageviews more than before; then the product must serve again (/health 200, a
new batch stored) without restarting anything the test did not restart itself.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator

import clickhouse_connect
import pytest

from events.ids import new_event_id
from scripts.stack import Stack
from scripts.test_services import ROOT

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.kafka,
    pytest.mark.clickhouse,
    pytest.mark.mongodb,
]
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
EVENTS_PER_BATCH = 10


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(
        tmp_path_factory.mktemp("stack"),
        database=f"naboria_chaos_{uuid.uuid4().hex[:8]}",
        redis_db=int(os.environ.get("NABORIA_CHAOS_REDIS_DB", "9")),
        # Short batches: the tests wait for the drain, not for a quiet topic's 5 s.
        extra_env={"INGEST_BATCH_MILLISECONDS": "300", "LOG_LEVEL": "INFO"},
    )
    try:
        stack.start_services()
        output = stack.prepare(demo=True)
        site = re.search(r"public id (\w+)", output)
        assert site, output
        stack.extra_env["CHAOS_SITE"] = site.group(1)
        stack.start_roles()
        stack.wait_healthy()
        yield stack
    finally:
        stack.stop()
        stack.drop_database()


def site_of(stack: Stack) -> str:
    return stack.extra_env["CHAOS_SITE"]


class Load:
    """Batches of pageviews posted to the web and ingest roles, in a thread, as a tracker
    posts them; ``acknowledged`` holds the ids of every event that got a 202."""

    def __init__(
        self,
        stack: Stack,
        *,
        path: str,
        seed: int,
        same_page: bool = False,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.urls = [f"{stack.web_url}/collect", f"{stack.ingest_url}/collect"]
        self.site = site_of(stack)
        self.path = path
        self.same_page = same_page
        self.user_agent = user_agent
        self.rng = random.Random(seed)  # noqa: S311 (reproducible test data)
        self.acknowledged: set[str] = set()
        self.answers: dict[str, int] = {}
        self.stop = threading.Event()
        self.running = threading.Event()
        self.running.set()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=240)
        assert not self.thread.is_alive(), "a batch never got its 202"

    def _post(self, url: str, body: bytes) -> str:
        request = urllib.request.Request(
            url,
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": self.user_agent},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return str(answer.status)
        except urllib.error.HTTPError as error:
            return str(error.code)
        except (urllib.error.URLError, OSError) as error:
            return type(error).__name__

    def _url(self, event_id: str) -> str:
        return f"https://localhost{self.path}/{'home' if self.same_page else event_id}"

    def _run(self) -> None:
        sent: list[bytes] = []
        number = 0
        while not self.stop.is_set():
            if not self.running.wait(0.1):
                continue
            ids = [new_event_id() for _ in range(EVENTS_PER_BATCH)]
            body = json.dumps(
                {
                    "site": self.site,
                    "events": [
                        {"type": "pageview", "url": self._url(event_id), "id": event_id}
                        for event_id in ids
                    ],
                }
            ).encode()
            # Until it is accepted, whatever happens (the tracker keeps a batch until then).
            deadline = time.monotonic() + 200
            while time.monotonic() < deadline:
                answer = self._post(self.urls[number % 2], body)
                self.answers[answer] = self.answers.get(answer, 0) + 1
                if answer == "202":
                    self.acknowledged.update(ids)
                    sent.append(body)
                    break
                time.sleep(0.2)
            else:
                return
            if self.rng.random() < 0.05:  # an accepted batch sent again: its answer was lost
                self._post(self.urls[number % 2], self.rng.choice(sent))
            number += 1
            time.sleep(0.02)

    def wait_for(self, batches: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acknowledged) < batches * EVENTS_PER_BATCH:
            assert time.monotonic() < deadline, f"load stalled: {self.answers}"
            time.sleep(0.1)


def clickhouse_client(stack: Stack) -> object:
    env = stack.environment()
    return clickhouse_connect.get_client(
        dsn=env["CLICKHOUSE_URL"], database=env["CLICKHOUSE_DATABASE"]
    )


def stored_ids(stack: Stack, path: str) -> dict[str, int]:
    """Each stored event id under ``path`` with its number of rows: plain SQL on the raw table."""
    rows = (
        clickhouse_client(stack)
        .query(  # type: ignore[attr-defined]
            "SELECT toString(event_id), count() FROM page_events"
            " WHERE site_id = {site:String} AND startsWith(pathname, {path:String})"
            " GROUP BY event_id",
            parameters={"site": site_of(stack), "path": path},
        )
        .result_rows
    )
    return dict(rows)


FACTS = """
from analytics import session_facts
from naboria import clickhouse
session_facts.refresh()
print(clickhouse.get_client().command(
    "SELECT sum(pageviews) FROM session_facts WHERE site_id = {site:String}",
    parameters={"site": %r}))
"""


def shell(stack: Stack, code: str) -> str:
    """The last line ``code`` printed, run by a one-off process of the product on the stack."""
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=stack.environment(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def facts_pageviews(stack: Stack) -> int:
    """The rollup, refreshed by a one-off process (as the worker's job does)."""
    return int(shell(stack, FACTS % site_of(stack)))


def wait_until_stored(stack: Stack, load: Load, timeout: float = 180) -> dict[str, int]:
    """Until every event the load got a 202 for is stored; each stored id with its rows."""
    deadline = time.monotonic() + timeout
    while (found := stored_ids(stack, load.path)).keys() != load.acknowledged:
        missing = len(load.acknowledged - found.keys())
        assert time.monotonic() < deadline, f"{missing} accepted events never stored"
        time.sleep(1)
    return found


def assert_stored_exactly_once(stack: Stack, load: Load, facts_before: int) -> None:
    found = wait_until_stored(stack, load)
    assert all(count == 1 for count in found.values()), {
        event_id: count for event_id, count in found.items() if count > 1
    }
    assert facts_pageviews(stack) - facts_before == len(load.acknowledged)


def assert_serves_again(stack: Stack) -> None:
    stack.wait_healthy(timeout=60)
    path = f"/after-{uuid.uuid4().hex[:6]}"
    with Load(stack, path=path, seed=0) as load:
        load.wait_for(batches=3)
    wait_until_stored(stack, load, timeout=60)


def run_fault(
    stack: Stack, fault: Callable[[], None], *, seed: int, loads: list[Load] | None = None
) -> Load:
    path = f"/chaos-{uuid.uuid4().hex[:6]}"
    facts_before = facts_pageviews(stack)
    with Load(stack, path=path, seed=seed) as load:
        if loads is not None:
            loads.append(load)
        load.wait_for(batches=20)
        fault()
        load.wait_for(batches=len(load.acknowledged) // EVENTS_PER_BATCH + 20, timeout=180)
    assert_stored_exactly_once(stack, load, facts_before)
    assert_serves_again(stack)
    return load


def test_drain_killed_during_load(stack: Stack) -> None:
    def fault() -> None:
        for _ in range(3):
            stack.roles["drain"].signal(signal.SIGKILL)
            time.sleep(2.5)  # the stack starts it again, as an orchestrator would

    restarts = stack.roles["drain"].restarts
    run_fault(stack, fault, seed=1)
    assert stack.roles["drain"].restarts > restarts


def test_web_and_ingest_killed_during_load(stack: Stack) -> None:
    def fault() -> None:
        stack.roles["web"].signal(signal.SIGKILL)
        time.sleep(1)
        stack.roles["ingest"].signal(signal.SIGKILL)
        time.sleep(3)

    run_fault(stack, fault, seed=2)


def test_broker_paused_then_resumed(stack: Stack) -> None:
    def fault() -> None:
        stack.services["kafka"].signal(signal.SIGSTOP)
        time.sleep(8)
        stack.services["kafka"].signal(signal.SIGCONT)

    run_fault(stack, fault, seed=3)


def test_broker_killed_and_restarted_empty(stack: Stack) -> None:
    """What the broker held is lost with it (Tansu keeps it in memory; a replicated Kafka
    would not): the load pauses until the drain has stored what was accepted, then the broker
    dies, and everything accepted while it is away or after it came back empty — buffered in
    the web and ingest processes meanwhile — must be stored."""
    loads: list[Load] = []

    def fault() -> None:
        load = loads[0]
        load.running.clear()
        time.sleep(0.5)  # the batch being sent gets its answer
        wait_until_stored(stack, load)
        stack.services["kafka"].signal(signal.SIGKILL)
        load.running.set()  # batches accepted while the broker is away
        time.sleep(3)
        stack.restart_service("kafka")

    run_fault(stack, fault, seed=4, loads=loads)


def test_clickhouse_unavailable_then_back(stack: Stack) -> None:
    run_fault(stack, lambda: stack.restart_service("clickhouse", pause=8), seed=5)


def test_sigterm_of_every_role_under_load(stack: Stack) -> None:
    def fault() -> None:
        for name in ("web", "ingest", "drain", "worker", "beat"):
            stack.roles[name].signal(signal.SIGTERM)
            time.sleep(1.5)

    run_fault(stack, fault, seed=6)
    logs = {name: (stack.logs / f"{name}.log").read_text(errors="replace") for name in stack.roles}
    assert "drain: stopped" in logs["drain"]


def test_health_reports_each_dependency_of_the_stack(stack: Stack) -> None:
    health = stack.wait_healthy()
    dependencies = health["dependencies"]
    assert isinstance(dependencies, dict)
    assert {name: report["status"] for name, report in dependencies.items()} == {
        "database": "ok",
        "clickhouse": "ok",
        "kafka": "ok",
        "mongodb": "ok",
        "channel_layer": "ok",
    }
    assert dependencies["clickhouse"]["backend"].startswith("http://127.0.0.1:")
    assert not dependencies["kafka"]["backend"].startswith("direct")
    stack.services["clickhouse"].signal(signal.SIGSTOP)
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{stack.web_url}/health", timeout=30)
        report = json.load(refused.value)
        assert refused.value.code == 503
        assert report["dependencies"]["clickhouse"]["status"] == "error"
        assert report["dependencies"]["kafka"]["status"] == "ok"
    finally:
        stack.services["clickhouse"].signal(signal.SIGCONT)
    stack.wait_healthy()


TOKEN = """
from sites.models import Site
from sites.services import api_token_create
site = Site.objects.get(public_id=%r)
print(api_token_create(organization=site.organization, name="chaos")[1])
"""


def test_the_reports_read_what_the_stack_stored(stack: Stack) -> None:
    """The dashboard's data, through the web role's API: the pageviews of a page sent to the
    ingest and web roles, stored by the drain, read back from ClickHouse over HTTP."""
    path = f"/dash-{uuid.uuid4().hex[:6]}"
    # A visitor of its own (another browser): the loads of the other tests are one long visit.
    other_browser = USER_AGENT.replace("Chrome/126", "Chrome/127")
    with Load(stack, path=path, seed=7, same_page=True, user_agent=other_browser) as load:
        load.wait_for(batches=3)
    wait_until_stored(stack, load, timeout=60)
    token = shell(stack, TOKEN % site_of(stack))
    # The pages of the visits that hold this page (a filter on a page keeps whole visits).
    request = urllib.request.Request(
        f"{stack.web_url}/api/v1/sites/{site_of(stack)}/reports/breakdown"
        f"?dimension=pages&page_size=100&path={path}/home",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        pages = {row["value"]: row["pageviews"] for row in json.load(answer)["results"]}
    assert pages[f"{path}/home"] == len(load.acknowledged)
