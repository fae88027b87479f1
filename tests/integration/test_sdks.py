"""The SDKs (sdk/js, sdk/python; docs/sdks.md) against a running Naboria: the web role as a
process, behind a proxy that answers 503, drops connections after the server handled the
request and refuses them (tests/sdk_server.py). Every event an SDK made is stored exactly once
(counted with plain SQL in ClickHouse), ad impressions and clicks too, and on a site with
Naboria's banner nothing is sent before the consent decision is recorded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
from django.db import connection
from naboria_client import Client, Consent, Visitor

from ads import snapshot
from ads.models import Placement
from ads.publishing import placements_publish
from consent.models import ConsentRecord
from ingest import identity
from scripts.clickhouse_http_standin import start_clickhouse_standin
from scripts.test_services import ROOT
from sites.selectors import site_secrets_valid
from tests.chaos.test_producer_faults import WebRole, wait_for
from tests.factories import published_campaign
from tests.sdk_server import FaultProxy

pytestmark = [pytest.mark.postgres, pytest.mark.mongodb, pytest.mark.redis]
NODE = shutil.which("node")
SCENARIO = ROOT / "sdk" / "js" / "integration" / "scenario.mjs"


@dataclass
class Stack:
    web: WebRole
    clickhouse: Any
    proxy: FaultProxy | None = None

    def start(self) -> FaultProxy:
        """Start the web role (publish ads before: the role loads them at start) and the proxy
        in front of it."""
        self.web.start()
        self.proxy = FaultProxy(self.web.port)
        return self.proxy

    def page_ids(self, site: str) -> Counter[str]:
        rows = self.clickhouse.query(
            "SELECT toString(event_id) FROM page_events WHERE site_id = {s:String}",
            parameters={"s": site},
        ).result_rows
        return Counter(row[0] for row in rows)

    def visitors(self, site: str) -> dict[str, str]:
        rows = self.clickhouse.query(
            "SELECT toString(event_id), visitor_id FROM page_events WHERE site_id = {s:String}",
            parameters={"s": site},
        ).result_rows
        return {row[0]: row[1] for row in rows}

    def ad_events(self, site: str) -> Counter[tuple[str, str]]:
        rows = self.clickhouse.query(
            "SELECT impression_id, event_type FROM ad_events WHERE site_id = {s:String}",
            parameters={"s": site},
        ).result_rows
        return Counter((row[0], row[1]) for row in rows)


@pytest.fixture(scope="module")
def clickhouse_of_the_module(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, Path]]:
    """A ClickHouse stand-in with the schema, and the collected static files (/t/<id>.json names
    the bundles by them), made once for this module's tests (each reads only its own site's
    rows): their URL and folder."""
    folder = tmp_path_factory.mktemp("sdks")
    standin, url = start_clickhouse_standin(folder / "clickhouse", folder / "ch.log")
    env = {
        **os.environ,
        "CLICKHOUSE_URL": url,
        "CLICKHOUSE_DATABASE": "naboria",
        "NABORIA_VAR_DIR": str(folder),
        "NABORIA_STARTUP_CHECKS": "false",
        "DJANGO_SETTINGS_MODULE": "naboria.settings",
    }
    try:
        for command in (["migrate_clickhouse"], ["collectstatic", "--noinput"]):
            subprocess.run(
                [sys.executable, "manage.py", *command, "--verbosity=0"],
                cwd=ROOT,
                env=env,
                check=True,
            )
        yield url, folder / "static"
    finally:
        standin.kill()
        standin.wait(timeout=10)


@pytest.fixture
def stack(
    transactional_db: None, tmp_path: Path, clickhouse_of_the_module: tuple[str, Path]
) -> Iterator[Stack]:
    """The web role on the direct path (an ad event's 200 waits for its ClickHouse insert),
    writing to the module's ClickHouse stand-in, which this process reads; started by the
    test. Its var folder is its own (spool, state), but for the collected static files."""
    url, static = clickhouse_of_the_module
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "static").symlink_to(static)
    database = connection.settings_dict
    env = {
        **{key: value for key, value in os.environ.items() if key != "KAFKA_BOOTSTRAP_SERVERS"},
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/"
        f"{database['NAME']}",
        "CLICKHOUSE_URL": url,
        "CLICKHOUSE_DATABASE": "naboria",
        "NABORIA_VAR_DIR": str(tmp_path / "var"),
        "NABORIA_STARTUP_CHECKS": "false",
        "INGEST_BATCH_MILLISECONDS": "100",
        "DJANGO_SETTINGS_MODULE": "naboria.settings",
    }
    stack = Stack(WebRole(env, tmp_path / "web.log", site=""), None)
    try:
        stack.clickhouse = clickhouse_connect.get_client(dsn=url, database="naboria")
        yield stack
        assert "Traceback" not in stack.web.output(), stack.web.output()
    finally:
        if stack.proxy is not None:
            stack.proxy.close()
        if stack.web.process is not None:
            stack.web.process.kill()
            stack.web.process.wait(timeout=10)


def stored_once(stack: Stack, site: str, ids: list[str]) -> Counter[str]:
    """The stored ids of ``site`` once all of ``ids`` arrived (the direct path inserts within
    100 ms; a late duplicate would show within the extra second)."""
    wait_for(lambda: set(ids) <= set(stack.page_ids(site)), 30, f"not stored: {ids}")
    time.sleep(1.0)
    return stack.page_ids(site)


def fast_rotation(placement: Placement) -> None:
    """A rotation every second (the admin's minimum is 5; the server's rule is the same)."""
    Placement.objects.filter(pk=placement.pk).update(rotation_seconds=1)
    placement.refresh_from_db()
    placements_publish(placements=[placement])
    snapshot.load()


def test_python_client_stores_every_event_once_through_503s_and_lost_answers(stack, site):
    placement, _ = published_campaign(site, ads=1)
    proxy = stack.start()
    proxy.plan = {
        "/collect": ["503", "drop", "refuse"],
        "/init": ["503"],
        "/ad-event": ["drop", "503"],
    }
    consented = Consent(analytics=True, ads=True)
    with Client(
        host=proxy.url, site=site.public_id, batch_size=5, flush_interval=0.1, backoff_factor=0.1
    ) as client:
        ids = [client.pageview(f"https://shop.example/p/{n}") for n in range(12)]
        visitor = client.visitor()  # through the 503 /init answers first
        signup = client.track(
            "Signup", url="https://shop.example/join", props={"plan": "pro"},
            visitor=visitor, consent=consented,
        )  # fmt: skip
        (item,) = client.listing(placement.key)["ads"]
        client.ad_event("impression", impression_token=item["impression_token"])
        client.ad_event("click", impression_token=item["impression_token"])
        assert client.flush(timeout=60)
    stored = stored_once(stack, site.public_id, [*ids, signup])
    assert stored == Counter([*ids, signup])  # each once, nothing else
    # The consented id the server issued, token-checked.
    assert stack.visitors(site.public_id)[signup] == visitor.bid
    impression = item["impression"]
    assert stack.ad_events(site.public_id) == {
        (impression, "impression"): 1,
        (impression, "click"): 1,
    }
    assert proxy.faults_left() == {}, proxy.log  # every fault was met and got over
    assert any(what == "drop after 202" for _, path, what in proxy.log if path == "/collect")
    assert proxy.waited_after("/collect", "503") >= 0.95  # Retry-After: 1


def test_python_client_keeps_a_stored_visitor_and_never_a_made_up_one(stack, site):
    proxy = stack.start()
    consented = Consent(analytics=True)
    with Client(host=proxy.url, site=site.public_id, flush_interval=0.1) as client:
        first = client.visitor()
        # As an app stores it: restored a day later, its token long past being fresh.
        stale = identity.issue_token(
            secret=site_secrets_valid(site=site)[0],
            bid=first.bid,
            site_id=site.public_id,
            now=time.time() - 86400,
        )
        restored = Visitor(bid=first.bid, token=stale)
        kept = client.pageview("https://shop.example/a", visitor=restored, consent=consented)
        made_up = Visitor(bid="user-42", token="0" * 64)
        other = client.pageview("https://shop.example/b", visitor=made_up, consent=consented)
        assert client.flush(timeout=30)
    stored_once(stack, site.public_id, [kept, other])
    visitors = stack.visitors(site.public_id)
    assert visitors[kept] == restored.bid == first.bid
    assert restored.token != stale  # renewed: the app stores it again
    # The server issued a new id in place of the one the app named; the client adopted it.
    assert visitors[other] == made_up.bid != "user-42"


def test_python_client_drops_a_refused_batch_and_keeps_going(stack, site, caplog):
    proxy = stack.start()
    with Client(host=proxy.url, site=site.public_id, flush_interval=0.1) as client:
        bad = client.pageview("not a url")  # refused by the server: 400, never retried
        client.flush(timeout=30)
        good = client.pageview("https://shop.example/")
        assert client.flush(timeout=30)
    stored = stored_once(stack, site.public_id, [good])
    assert bad not in stored
    assert [path for _, path, _ in proxy.log].count("/collect") == 2
    assert "page events refused (400)" in caplog.text


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_js_sdk_offline_queue_consent_and_ads_store_everything_once(
    stack, site_with_banner, tmp_path
):
    """sdk/js/integration/scenario.mjs: an app that starts online, goes offline, is asked
    for consent, tracks and quits (its queue kept in a file-backed AsyncStorage); then starts
    again behind faults, rotates a placement's ads and clicks one."""
    site = site_with_banner
    placement, _ = published_campaign(site, ads=2)
    fast_rotation(placement)
    proxy = stack.start()
    proxy.plan = {
        "/consent": ["503"],
        "/collect": ["503", "drop"],
        "/ad-event": ["drop", "503", "refuse"],
        "/ads/listing": ["refuse"],
    }
    report = tmp_path / "report.json"
    result = subprocess.run(
        [NODE or "node", SCENARIO],
        env={
            **os.environ,
            "NABORIA_HOST": proxy.url,
            "NABORIA_SITE": site.public_id,
            "NABORIA_PLACEMENT": placement.key,
            "NABORIA_STORAGE": str(tmp_path / "storage.json"),
            "NABORIA_REPORT": str(report),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    facts = json.loads(report.read_text())
    # Nothing before the decision: the offline phase sent nothing at all, and once online the
    # recorded decision (201) came before any event or ad request.
    paths = [(path, what) for _, path, what in proxy.log]
    first_recorded = paths.index(("/consent", 201))
    assert all(
        path in ("/t/" + site.public_id + ".json", "/consent") for path, _ in paths[:first_recorded]
    )
    assert ConsentRecord.objects.filter(site=site).count() == 1  # the 503 was not recorded
    record = ConsentRecord.objects.get(site=site)
    assert set(record.granted) >= {"analytics", "ads"}

    stored = stored_once(stack, site.public_id, facts["page_ids"])
    assert stored == Counter(facts["page_ids"])
    # Every event went with the browser id the consent answer issued (its token checked).
    assert set(stack.visitors(site.public_id).values()) == {facts["bid"]}

    expected: Counter[tuple[str, str]] = Counter()
    for shown in facts["impressions"]:
        expected[(display_id(shown), "impression")] = 1
    expected[(display_id(facts["click"]), "click")] = 1
    wait_for(
        lambda: stack.ad_events(site.public_id) == expected,
        30,
        str(stack.ad_events(site.public_id)),
    )
    assert len(facts["impressions"]) >= 3  # both ads, and the first one a second time
    assert any(shown["display"] == 2 for shown in facts["impressions"])
    assert proxy.faults_left() == {}, proxy.log
    assert proxy.waited_after("/collect", "503") >= 0.95  # Retry-After: 1


def test_python_client_sends_what_it_holds_when_the_process_exits(stack, site):
    """No close(), no flush(): the exit hook sends the queue (flush_interval far away)."""
    proxy = stack.start()
    proxy.plan = {"/collect": ["503"]}
    script = (
        "import sys; from naboria_client import Client\n"
        f"client = Client(host={proxy.url!r}, site={site.public_id!r}, flush_interval=3600)\n"
        "print(' '.join(client.pageview(f'https://shop.example/{n}') for n in range(3)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(ROOT / "sdk" / "python")},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    ids = result.stdout.split()
    assert len(ids) == 3
    assert stored_once(stack, site.public_id, ids) == Counter(ids)
    assert proxy.faults_left() == {}


def display_id(shown: dict[str, Any]) -> str:
    """The impression id of an item's n-th display (ads.signing.Delivery.display_impression)."""
    return (
        shown["impression"]
        if shown["display"] == 1
        else f"{shown['impression']}.{shown['display']}"
    )
