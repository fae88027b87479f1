"""The cookie and tracker scan end to end: `manage.py scan_site` and the periodic task drive
headless Chromium over a demo page served by a local server (tests/data/scan_demo.html), which
loads Naboria's loader and banner from the application under test, sets a cookie and a storage
key and loads a third-party pixel before consent, and sets another cookie only after consent
(the banner's consent event). The scan must flag the first ones, not the after-consent ones.
Also: the scanner never visits a host off the site's allowed domains (a configured URL, a
redirect) nor a non-public address unless allowed, and each page has a time budget."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from consent.models import ConsentRecord
from scans import browser
from scans.models import Scan, ScanConfig, ScanFinding, ScanTrigger
from scans.tasks import scan_due_sites
from scripts.test_services import ROOT
from tests.conftest import CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.clickhouse,
    pytest.mark.usefixtures("clickhouse_schema", "direct_path"),
]
DEMO = (ROOT / "tests" / "data" / "scan_demo.html").read_text()


class DemoSite:
    """The site's own web server: the demo page, a redirect inside the site, one off it, a
    slow page, and the "third-party" pixels (asked for on another host name, localhost)."""

    def __init__(self, naboria: str, public_id: str) -> None:
        self.requests: list[str] = []  # "host path" of each request received
        demo = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host = self.headers.get("Host", "").split(":")[0]
                demo.requests.append(f"{host} {self.path}")
                if self.path == "/demo":
                    page = DEMO.replace("{naboria}", naboria).replace("{site}", public_id)
                    body = page.replace("{port}", str(demo.port)).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    # A server-set cookie before consent, too.
                    self.send_header("Set-Cookie", "server_session=abc; Path=/; HttpOnly")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif self.path == "/hop":
                    self._redirect(f"http://127.0.0.1:{demo.port}/demo")
                elif self.path == "/leave":
                    self._redirect(f"http://localhost:{demo.port}/internal-admin")
                elif self.path == "/slow":
                    threading.Event().wait(5)
                    self.send_response(200)
                    self.end_headers()
                else:
                    self.send_response(200)
                    self.send_header("Content-Type", "image/gif")
                    self.end_headers()

            def _redirect(self, location: str) -> None:
                self.send_response(302)
                self.send_header("Location", location)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def received(self, host: str, path: str) -> bool:
        return f"{host} {path}" in self.requests


@pytest.fixture
def shop(site_with_banner: Any) -> Any:
    site_with_banner.allowed_domains = ["127.0.0.1"]
    site_with_banner.save()
    return site_with_banner


@pytest.fixture
def demo(server: str, shop: Any) -> Iterator[DemoSite]:
    site = DemoSite(server, shop.public_id)
    with override_settings(
        SCAN_CHROMIUM_PATH=str(CHROMIUM),
        SCAN_ALLOW_PRIVATE_NETWORKS=True,  # the demo runs on 127.0.0.1
        SCAN_PAGE_TIMEOUT_SECONDS=15,
    ):
        yield site
    site.httpd.shutdown()
    site.httpd.server_close()


def findings(scan: Scan) -> dict[tuple[str, str], ScanFinding]:
    return {
        (finding.kind, finding.name): finding
        for finding in ScanFinding.objects.filter(page__scan=scan)
    }


def test_the_command_flags_what_the_page_sets_before_consent_and_not_after(demo, shop, capsys):
    call_command("scan_site", shop.public_id, url=[f"{demo.url}/demo"])
    scan = Scan.objects.get(site=shop)
    assert (scan.status, scan.trigger, scan.pages_scanned) == ("done", "command", 1)
    (page,) = scan.pages.all()
    assert (page.error, page.http_status, page.banner_found) == ("", 200, True)
    found = findings(scan)

    pre = found[("cookie", "pre_consent_id")]
    assert (pre.phase, pre.party, pre.domain, pre.flagged) == ("before", "first", "127.0.0.1", True)
    assert pre.expires_at is not None
    assert found[("cookie", "server_session")].flagged  # set by the page's HTTP response
    assert found[("cookie", "server_session")].expires_at is None  # a session cookie
    assert found[("local_storage", "pre_consent_key")].flagged
    pixel = found[("request", "localhost")]
    assert (pixel.phase, pixel.party, pixel.resource_types) == ("before", "third", "image")

    after = found[("cookie", "after_consent_ads")]
    assert (after.phase, after.flagged) == ("after", False)
    # Accepting made the banner store its decision (a cookie every subdomain shares): found,
    # and only after consent.
    decision = found[("cookie", f"naboria_{shop.public_id}")]
    assert decision.phase == "after"
    # Nothing the banner stores or sends exists before a decision (Naboria's own behaviour).
    assert not [name for kind, name in found if "naboria" in name and found[(kind, name)].flagged]
    assert scan.flagged == sum(finding.flagged for finding in found.values()) == 4
    # The scanner is no visitor: its decision is not recorded as one.
    assert not ConsentRecord.objects.filter(site=shop).exists()

    out = capsys.readouterr().out
    assert "BEFORE CONSENT  cookie               pre_consent_id" in out
    assert "after consent   cookie               after_consent_ads" in out


def test_the_periodic_task_scans_due_sites_and_keeps_the_last_ones(demo, shop):
    ScanConfig.objects.create(site=shop, urls=[f"{demo.url}/hop"], include_top_pages=False)
    with override_settings(SCAN_KEEP=1):
        assert scan_due_sites() == [shop.pk]  # runs the scan (eager tasks in tests)
        assert scan_due_sites() == []  # not due again before SCAN_INTERVAL_HOURS
        Scan.objects.update(started_at=Scan.objects.get().started_at.replace(year=2020))
        assert scan_due_sites() == [shop.pk]
    (scan,) = Scan.objects.filter(site=shop)  # the older one was pruned
    assert scan.trigger == ScanTrigger.SCHEDULE
    pages = {page.url: page for page in scan.pages.all()}
    # The home page of the allowed domain 127.0.0.1 (https, port 443: nothing listens there)
    # and the configured URL, whose redirect inside the site is followed.
    assert set(pages) == {"https://127.0.0.1/", f"{demo.url}/hop"}
    assert pages["https://127.0.0.1/"].error
    assert pages[f"{demo.url}/hop"].final_url == f"{demo.url}/demo"
    assert findings(scan)[("cookie", "pre_consent_id")].flagged


def test_the_scanner_visits_no_host_off_the_site(demo, shop):
    # A URL given on the command line for another host is not visited at all.
    call_command("scan_site", shop.public_id, url=[f"http://localhost:{demo.port}/demo"])
    scan = Scan.objects.get(site=shop)
    assert not scan.pages.exists()
    assert f"'http://localhost:{demo.port}/demo' is not on the site's allowed domains" in scan.error
    # A configured URL of another host cannot be saved in the admin (tests/unit), nor is one
    # visited if stored anyway.
    ScanConfig.objects.create(
        site=shop, urls=[f"http://localhost:{demo.port}/x"], include_top_pages=False
    )
    call_command("scan_site", shop.public_id)
    scan = Scan.objects.filter(site=shop).latest("started_at")
    assert [page.url for page in scan.pages.all()] == ["https://127.0.0.1/"]
    assert f"'http://localhost:{demo.port}/x' is not on the site's allowed domains" in scan.error
    # A redirect of the site's server off the site stops the page before the browser goes.
    call_command("scan_site", shop.public_id, url=[f"{demo.url}/leave"])
    (page,) = Scan.objects.filter(site=shop).latest("started_at").pages.all()
    assert "redirected off the site" in page.error
    assert not ScanFinding.objects.filter(page=page).exists()
    assert demo.received("127.0.0.1", "/leave")
    assert not any(request.startswith("localhost") for request in demo.requests)


def test_non_public_addresses_are_refused_unless_allowed(demo, shop):
    with override_settings(SCAN_ALLOW_PRIVATE_NETWORKS=False):
        call_command("scan_site", shop.public_id, url=[f"{demo.url}/demo"])
    (page,) = Scan.objects.get(site=shop).pages.all()
    assert page.error
    assert demo.requests == []  # not one request reached the loopback address


def test_requests_of_a_page_to_non_public_addresses_are_refused(demo, shop, monkeypatch):
    # As if 127.0.0.1 (the page) were a public address, and localhost (its pixel) and
    # 127.0.0.2 (its WebSocket) internal ones.
    monkeypatch.setattr(browser, "_resolves_to_public_addresses", lambda host: host == "127.0.0.1")
    with override_settings(SCAN_ALLOW_PRIVATE_NETWORKS=False):
        call_command("scan_site", shop.public_id, url=[f"{demo.url}/demo"])
    (page,) = Scan.objects.get(site=shop).pages.all()
    assert (page.error, page.http_status) == ("", 200)
    assert page.blocked_hosts == ["127.0.0.2", "localhost"]
    assert demo.received("127.0.0.1", "/demo")
    assert not any(request.startswith("localhost") for request in demo.requests)
    assert findings(Scan.objects.get(site=shop))[("cookie", "pre_consent_id")].flagged


def test_chromium_refuses_internal_addresses_the_guard_let_through(demo, shop, monkeypatch):
    # The second layer (docs/scans.md, "Security"): with private networks not allowed,
    # Chromium's Local Network Access checks stay on and refuse what the page asks of a
    # loopback address by the address it connects to (DNS rebinding, subresource redirects).
    monkeypatch.setattr(browser, "_resolves_to_public_addresses", lambda host: True)
    with override_settings(SCAN_ALLOW_PRIVATE_NETWORKS=False):
        call_command("scan_site", shop.public_id, url=[f"{demo.url}/demo"])
    (page,) = Scan.objects.get(site=shop).pages.all()
    assert (page.error, page.blocked_hosts) == ("", [])
    assert demo.received("127.0.0.1", "/demo")  # the document: fetched by the scanner itself
    assert not any(request.startswith("localhost") for request in demo.requests)


def test_each_page_has_a_time_budget(demo, shop):
    with override_settings(SCAN_PAGE_TIMEOUT_SECONDS=1):
        call_command("scan_site", shop.public_id, url=[f"{demo.url}/slow", f"{demo.url}/demo"])
    slow, page = Scan.objects.get(site=shop).pages.all()
    assert "imeout" in slow.error
    assert page.url.endswith("/demo")  # the scan went on with the next page


def test_a_scan_without_a_browser_fails_and_says_why(demo, shop, tmp_path: Path):
    with (
        override_settings(SCAN_CHROMIUM_PATH=str(tmp_path / "no-chromium")),
        pytest.raises(CommandError, match="the browser failed"),
    ):
        call_command("scan_site", shop.public_id, url=[f"{demo.url}/demo"])
    assert Scan.objects.get(site=shop).status == "failed"
