"""What `make run` promises, checked as a new user would: prepare the embedded installation,
serve it with the web role's server (naboria.web: daphne), get a 200 from /health with every
embedded backend ok, and log into the admin with the printed credentials in a real browser."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from scripts.test_services import ROOT, embedded_environment, free_port, prepare_demo

WEB_APP = "naboria.asgi:application"
BROWSER_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory) -> Iterator[dict[str, str]]:
    env = embedded_environment(tmp_path_factory.mktemp("embedded-var"))
    first, site = prepare_demo(env)
    second, _ = prepare_demo(env)
    password = re.search(r"Admin login:\s+admin / (\S+)", first)
    assert password, first

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "naboria.web", "-b", "127.0.0.1", "-p", str(port), WEB_APP],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/", timeout=1)
            break
        except OSError:
            if server.poll() is not None:
                raise AssertionError(server.communicate()[0].decode()) from None
            time.sleep(0.2)
    try:
        yield {
            "base": base,
            "password": password.group(1),
            "first": first,
            "second": second,
            "site": site,
        }
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.clickhouse
def test_second_prepare_reuses_everything(embedded):
    assert "Applied ClickHouse migration 0001_raw_events" in embedded["first"]
    assert "ClickHouse schema is up to date." in embedded["second"]
    # The same credentials are printed again rather than new ones.
    assert f"admin / {embedded['password']}" in embedded["second"]


@pytest.mark.clickhouse
def test_health_is_200_with_every_embedded_backend_ok(embedded):
    with urllib.request.urlopen(f"{embedded['base']}/health", timeout=10) as response:
        assert response.status == 200
        body = json.load(response)
    backends = {name: report["backend"] for name, report in body["dependencies"].items()}
    assert all(report["status"] == "ok" for report in body["dependencies"].values()), body
    assert backends["database"].startswith("sqlite")
    assert backends["clickhouse"].startswith("chdb (embedded")
    assert backends["kafka"].startswith("direct")
    assert backends["mongodb"] == "in-process (mongomock)"
    assert backends["channel_layer"] == "in-memory"


@pytest.mark.browser
@pytest.mark.clickhouse
def test_admin_login_with_printed_credentials(embedded):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page(user_agent=BROWSER_USER_AGENT)
            page.goto(f"{embedded['base']}/admin/")
            page.fill("#id_username", "admin")
            page.fill("#id_password", embedded["password"])
            page.click("input[type=submit]")
            page.wait_for_selector("#site-name")
            assert "Sites and organizations" in page.content()
            page.click("a[href='/admin/sites/site/']")
            page.wait_for_url("**/admin/sites/site/")
            assert "Demo shop" in page.inner_text("#result_list")
        finally:
            browser.close()


@pytest.mark.clickhouse
def test_embedded_server_accepts_events_on_the_direct_path(embedded):
    body = json.dumps(
        {"site": embedded["site"], "events": [{"type": "pageview", "url": "http://127.0.0.1/"}]}
    ).encode()
    request = urllib.request.Request(
        f"{embedded['base']}/collect",
        data=body,
        headers={"Content-Type": "text/plain", "User-Agent": BROWSER_USER_AGENT},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
        assert json.load(response) == {"accepted": 1, "rejected": []}

    # An ad event is answered only after its ClickHouse insert: a 200 proves the embedded
    # engine inside the server process stores events. Its impression token is the one the
    # demo page's own ad element was rendered with.
    with urllib.request.urlopen(f"{embedded['base']}/demo/", timeout=10) as response:
        page = response.read().decode()
    token = re.search(r'data-naboria-impression-token="([^"]+)"', page)
    assert token, "the demo page has no ad element with an impression token"
    shown = {"type": "impression", "impression_token": html.unescape(token.group(1))}
    request = urllib.request.Request(
        f"{embedded['base']}/ad-event",
        data=json.dumps(shown).encode(),
        headers={"Content-Type": "application/json", "User-Agent": BROWSER_USER_AGENT},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert json.load(response)["stored"] is True


def test_demo_page_loader_and_bundles_are_served_as_make_run_serves_them(embedded):
    base = embedded["base"]
    with urllib.request.urlopen(f"{base}/demo/", timeout=10) as response:
        page = response.read().decode()
    assert f'src="/t/{embedded["site"]}.js"' in page
    with urllib.request.urlopen(f"{base}/t/{embedded['site']}.js", timeout=10) as response:
        loader = response.read().decode()
    config, _ = json.JSONDecoder().raw_decode(loader, loader.index('{"site":'))
    # Collected static files: content-hashed names served for good.
    # The demo site is on 127.0.0.1 and localhost: two registrable domains, so the cross-domain
    # linker comes first.
    names = [url.rsplit("/", 1)[1].split(".")[0] for url in config["scripts"]]
    assert names == ["linker", "tracker", "ads", "banner", "tags"]
    for url in config["scripts"]:
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            assert "immutable" in response.headers["Cache-Control"]
            assert len(response.read()) > 500
    # The demo site has recommendations on: the module is served too (modern browsers only).
    with urllib.request.urlopen(config["recsScript"], timeout=10) as response:
        assert "immutable" in response.headers["Cache-Control"]


@pytest.mark.clickhouse
def test_demo_site_recommends_its_popular_pages_from_the_start(embedded):
    """Without Redis the popular lists live in the web process: it builds them when it starts
    (from the demo's generated traffic), not only at the job's next run."""
    query = urllib.parse.urlencode({"site": embedded["site"], "url": "http://127.0.0.1/"})
    request = urllib.request.Request(
        f"{embedded['base']}/recs/items?{query}", headers={"User-Agent": BROWSER_USER_AGENT}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.load(response)
    assert answer["personal"] is False
    assert len(answer["items"]) == 5
    # The URLs the generated traffic visited the pages at.
    assert all(item["url"].endswith(item["path"]) for item in answer["items"])
    assert "/" not in [item["path"] for item in answer["items"]]
