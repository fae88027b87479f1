"""The scan's browser: visits pages in headless Chromium through Playwright's sync API, each in
a fresh context (no cookies, no storage), first without a decision, then after accepting
everything through the site's Naboria banner and reloading, and reports what it saw.

No database access here (Django refuses ORM calls while Playwright's event loop runs in the
thread): callers pass plain values in and store the PageVisit results afterwards.

Guards (docs/scans.md, "Security"): a main-frame navigation, each redirect hop included, must
stay on the site's allowed domains (scans.targets); unless ``allow_private_networks``, no
request of the page may reach a loopback, private, link-local or otherwise non-public address;
every page has a time budget. The banner's decision is not posted to Naboria's /consent (the
scanner is no visitor: its decisions would count in consent rates and the proof export); the
banner then applies it locally, as it does when the server cannot be reached.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

from scans.targets import is_first_party, url_refusal

logger = logging.getLogger(__name__)

# The user agent says what it is: Naboria's bot detection (ingest.bots, the isbot list matches
# "scan") keeps the scanner's own pageviews out of the site's reports.
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/{major}.0.0.0 Safari/537.36 NaboriaScanner/1.0"
)
# After the load event, how long to wait at most for the network to go quiet (pages holding
# an ad stream open never do).
SETTLE_SECONDS = 3.0
MAX_REDIRECTS = 5


@dataclass
class Seen:
    """One finding: a cookie, storage key or third-party host, in the phase that showed it."""

    kind: str  # scans.models.FindingKind
    phase: str  # scans.models.Phase
    name: str
    domain: str
    party: str  # scans.models.Party
    expires_at: datetime | None = None
    resource_types: set[str] = field(default_factory=set)
    requests: int = 0


@dataclass
class PageVisit:
    url: str
    final_url: str = ""
    http_status: int | None = None
    banner_found: bool = False
    error: str = ""
    findings: list[Seen] = field(default_factory=list)
    # Hosts the page asked for that the guard refused (non-public addresses).
    blocked_hosts: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class ScanOptions:
    public_id: str  # the site's, to recognise its banner's /consent post
    allowed_domains: tuple[str, ...]
    page_timeout_seconds: float
    allow_private_networks: bool
    chromium_path: str  # empty: Playwright's own Chromium


class PageRefused(Exception):
    """The page led the browser off the site's allowed domains."""


@contextmanager
def chromium(options: ScanOptions) -> Iterator[Any]:
    """A headless Chromium browser (Playwright), closed afterwards."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=options.chromium_path or None,
            headless=True,
            # Chromium's Local Network Access checks count a document the scanner fetched
            # (route_navigation) as public and refuse its requests to loopback and private
            # addresses: the second layer of the guard, off only when those are allowed.
            args=["--disable-features=LocalNetworkAccessChecks"]
            if options.allow_private_networks
            else [],
        )
        try:
            yield browser
        finally:
            browser.close()


def visit_pages(
    urls: list[str], options: ScanOptions, *, on_version: Callable[[str], None]
) -> list[PageVisit]:
    """Visit each URL (refused ones are reported, not visited); ``on_version`` receives the
    browser's version once it runs."""
    with chromium(options) as browser:
        on_version(browser.version)
        return [_visit_safely(browser, url, options) for url in urls]


def _visit_safely(browser: Any, url: str, options: ScanOptions) -> PageVisit:
    refusal = url_refusal(url=url, allowed_domains=options.allowed_domains)
    if refusal:
        return PageVisit(url=url, error=f"not visited: {refusal}")
    visit = PageVisit(url=url)
    try:
        _Visit(browser, visit, options).run()
    except PageRefused as refused:
        visit.error = f"stopped: {refused}"
        visit.findings = []
    except PlaywrightError as error:
        # A timeout or a page that cannot load: reported on the page, the scan goes on.
        visit.error = str(error).splitlines()[0][:1000]
    return visit


class _Visit:
    """One page, in its own browser context, in two phases."""

    def __init__(self, browser: Any, visit: PageVisit, options: ScanOptions) -> None:
        self.browser = browser
        self.visit = visit
        self.options = options
        self.deadline = time.monotonic() + options.page_timeout_seconds
        self.phase = "before"
        self.requests: dict[tuple[str, str], Seen] = {}
        self.redirect_to: str | None = None
        self.refused: PageRefused | None = None
        self.navigation_error = ""
        self.public_hosts: dict[str, bool] = {}
        self.page: Any = None

    def remaining_ms(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise PlaywrightTimeout(
                f"page timeout: {self.options.page_timeout_seconds:g} s (SCAN_PAGE_TIMEOUT_SECONDS)"
            )
        return left * 1000

    def run(self) -> None:
        major = self.browser.version.split(".")[0]
        context = self.browser.new_context(
            user_agent=USER_AGENT.format(major=major),
            locale="en-US",
            # A service worker's requests would bypass the routing below.
            service_workers="block",
        )
        try:
            context.route("**/*", self.route)
            context.route_web_socket(re.compile(".*"), self.route_web_socket)
            context.on("request", self.record_request)
            self.page = context.new_page()
            self.navigate(self.visit.url)
            self.settle()
            before_cookies = self.cookies(context, "before")
            before_storage = self.storage("before")
            self.phase = "after"
            self.visit.banner_found = self.accept_all()
            if self.visit.banner_found:
                self.settle()
            # What runs on a page view once consent is stored (tags injected at load).
            self.navigate(self.page.url)
            self.settle()
            after_cookies = self.cookies(context, "after")
            after_storage = self.storage("after")
            self.visit.findings = [
                *before_cookies.values(),
                *(seen for key, seen in after_cookies.items() if key not in before_cookies),
                *before_storage.values(),
                *(seen for key, seen in after_storage.items() if key not in before_storage),
                *self.third_party_requests(),
            ]
        finally:
            # A handler may still be fetching the page that timed out: closing under it
            # disposes its fetch, and Playwright hands the handler's error to whichever call
            # runs next (the next page's) or, seen under load, never finishes the close. Its
            # fetch is bounded by the page's budget, so waiting for it is short.
            context.unroute_all(behavior="wait")
            context.close()

    # --- guards -------------------------------------------------------------------------

    def route(self, route: Any, request: Any) -> None:
        try:
            self.decide(route, request)
        except PlaywrightError as error:
            # The request went away under the handler (its page navigated or closed): there
            # is nothing left to decide, and an error raised here would surface in another call.
            logger.debug("route of %s: %s", request.url, error)

    def decide(self, route: Any, request: Any) -> None:
        host = urlsplit(request.url).hostname or ""
        if request.url.startswith(("http:", "https:")) and not self.host_is_public(host):
            self.visit.blocked_hosts.add(host)
            route.abort("blockedbyclient")
            return
        if request.method == "POST" and self.is_banner_decision(request):
            route.abort("blockedbyclient")
            return
        if request.is_navigation_request() and request.frame.parent_frame is None:
            self.route_navigation(route, request)
            return
        route.continue_()

    def route_navigation(self, route: Any, request: Any) -> None:
        """Main-frame documents are fetched hop by hop: Chromium would follow a redirect
        without routing its target, so a redirect ends this navigation and navigate() checks
        the target before going there."""
        refusal = url_refusal(url=request.url, allowed_domains=self.options.allowed_domains)
        if refusal:
            self.refused = PageRefused(f"navigation refused: {refusal}")
            route.abort("blockedbyclient")
            return
        budget_ms = max(1.0, (self.deadline - time.monotonic()) * 1000)
        try:
            response = route.fetch(max_redirects=0, timeout=budget_ms)
        except PlaywrightError as error:
            self.navigation_error = str(error).splitlines()[0]
            route.abort("failed")
            return
        location = response.headers.get("location")
        if 300 <= response.status < 400 and location:
            self.redirect_to = urljoin(request.url, location)
            route.abort("aborted")
            return
        route.fulfill(response=response)

    def route_web_socket(self, socket_route: Any) -> None:
        host = urlsplit(socket_route.url).hostname or ""
        if not self.host_is_public(host):
            self.visit.blocked_hosts.add(host)
            socket_route.close(code=1008, reason="refused by Naboria's scan")
            return
        socket_route.connect_to_server()

    def host_is_public(self, host: str) -> bool:
        if self.options.allow_private_networks:
            return True
        if host not in self.public_hosts:
            self.public_hosts[host] = _resolves_to_public_addresses(host)
        return self.public_hosts[host]

    def is_banner_decision(self, request: Any) -> bool:
        if not urlsplit(request.url).path.endswith("/consent"):
            return False
        try:
            body = json.loads(request.post_data or "")
        except ValueError:
            return False
        return isinstance(body, dict) and body.get("site") == self.options.public_id

    # --- steps --------------------------------------------------------------------------

    def navigate(self, url: str) -> None:
        for _ in range(MAX_REDIRECTS + 1):
            refusal = url_refusal(url=url, allowed_domains=self.options.allowed_domains)
            if refusal:
                raise PageRefused(f"redirected off the site: {refusal}")
            self.redirect_to = None
            self.refused = None
            self.navigation_error = ""
            try:
                response = self.page.goto(url, wait_until="load", timeout=self.remaining_ms())
            except PlaywrightError:
                if self.refused is not None:
                    raise self.refused from None
                if self.navigation_error:
                    raise PlaywrightError(self.navigation_error) from None
                if self.redirect_to is None:
                    raise
                url = self.redirect_to
                continue
            self.visit.final_url = self.page.url
            self.visit.http_status = response.status if response is not None else None
            return
        raise PageRefused(f"more than {MAX_REDIRECTS} redirects")

    def settle(self) -> None:
        wait = min(SETTLE_SECONDS * 1000, self.remaining_ms())
        # Still busy after it (an ad stream, polling): what it set so far is what we report.
        with suppress(PlaywrightTimeout):
            self.page.wait_for_load_state("networkidle", timeout=wait)

    def accept_all(self) -> bool:
        """Click "accept all" on the site's Naboria banner, as a visitor would; False when no
        banner shows (the site's banner is off, or it uses another CMP)."""
        labels = self.page.evaluate(
            """() => {
                const banner = window.naboriaConfig && window.naboriaConfig.banner
                return banner ? Object.values(banner.texts).map((text) => text.accept) : []
            }"""
        )
        if not isinstance(labels, list) or not labels:
            return False
        dialog = self.page.get_by_role("dialog")
        # The banner's bundle may still be on its way when the network went quiet.
        with suppress(PlaywrightTimeout):
            dialog.first.wait_for(state="visible", timeout=min(5000, self.remaining_ms()))
        for label in labels:
            button = dialog.get_by_role("button", name=str(label), exact=True)
            if button.count():
                button.first.click(timeout=self.remaining_ms())
                return True
        return False

    # --- what the page left ---------------------------------------------------------------

    def cookies(self, context: Any, phase: str) -> dict[tuple[str, str, str], Seen]:
        page_host = urlsplit(self.page.url).hostname or ""
        found = {}
        for cookie in context.cookies():
            expires = cookie.get("expires", -1)
            first = is_first_party(
                host=cookie["domain"],
                page_host=page_host,
                allowed_domains=self.options.allowed_domains,
            )
            found[(cookie["name"], cookie["domain"], cookie["path"])] = Seen(
                kind="cookie",
                phase=phase,
                name=cookie["name"],
                domain=cookie["domain"],
                party="first" if first else "third",
                expires_at=datetime.fromtimestamp(expires, UTC) if expires > 0 else None,
            )
        return found

    def storage(self, phase: str) -> dict[tuple[str, str], Seen]:
        keys = self.page.evaluate(
            """() => ({
                origin: location.origin,
                local: Object.keys(localStorage),
                session: Object.keys(sessionStorage),
            })"""
        )
        found = {}
        for kind, names in (("local_storage", keys["local"]), ("session_storage", keys["session"])):
            for name in names:
                found[(kind, name)] = Seen(
                    kind=kind, phase=phase, name=name, domain=keys["origin"], party="first"
                )
        return found

    def record_request(self, request: Any) -> None:
        host = urlsplit(request.url).hostname
        if not host or self.page is None:
            return
        page_host = urlsplit(self.visit.url if self.page.url == "about:blank" else self.page.url)
        if is_first_party(
            host=host,
            page_host=page_host.hostname or "",
            allowed_domains=self.options.allowed_domains,
        ):
            return
        seen = self.requests.setdefault(
            (self.phase, host),
            Seen(kind="request", phase=self.phase, name=host, domain=host, party="third"),
        )
        seen.resource_types.add(request.resource_type)
        seen.requests += 1

    def third_party_requests(self) -> list[Seen]:
        """A host requested before consent is reported once, as before; one first requested
        after consent, as after."""
        before = {host for phase, host in self.requests if phase == "before"}
        return [
            seen
            for (phase, host), seen in self.requests.items()
            if phase == "before" or host not in before
        ]


def _resolves_to_public_addresses(host: str) -> bool:
    """Whether every address of ``host`` is a public one (not loopback, private, link-local,
    reserved or multicast); False when it does not resolve."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):
        return False
    return bool(addresses) and all(
        ipaddress.ip_address(str(address).split("%")[0]).is_global for address in addresses
    )
