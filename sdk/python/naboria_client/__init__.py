"""Naboria's client for servers (docs/sdks.md): page events, custom events and ad events sent
from a background thread in batches, retried with exponential backoff and jitter, and flushed
when the process exits.

    from naboria_client import Client

    naboria = Client(host="https://naboria.example", site="k3x9m2p7q4ab")
    naboria.pageview("https://shop.example/cart", user_agent=request.headers["User-Agent"])
    naboria.track("Signup", url="https://shop.example/join", props={"plan": "pro"})

    # With analytics consent: a browser id the server issued (store visitor.bid and .token).
    visitor = naboria.visitor()
    naboria.pageview("https://shop.example/", visitor=visitor, consent=Consent(analytics=True))

It speaks the tracking protocol (docs/tracking-protocol.md): every event gets a UUIDv7 when it
is made and keeps it through every retry, so a batch sent again after a 503 or a dropped
connection is stored once. 2xx: stored; 408, 429, 5xx and network errors: retried (honouring
``Retry-After``); any other 4xx would be refused again: dropped and logged.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import queue
import threading
import time
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import urllib3
from urllib3.exceptions import HTTPError

__all__ = ["Client", "Consent", "Visitor", "uuid7"]

logger = logging.getLogger("naboria_client")

# Statuses worth sending the same body again: the server may take it later.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# A token is accepted with events in its own 5-minute window and the next: renewed after 4
# minutes. /init keeps the id only for a token it issued for it (of any age up to the renewal
# horizon, docs/tracking-protocol.md); asked without one it issues a new id.
RENEW_TOKEN_AFTER_SECONDS = 240
MAX_BATCH = 100


def uuid7(ms: int | None = None) -> str:
    """A UUIDv7 (RFC 9562): the first 48 bits are the time in ms, so the server looks the id up
    among recent ones only."""
    millis = int(time.time() * 1000) if ms is None else ms
    value = (millis & (2**48 - 1)) << 80 | int.from_bytes(os.urandom(10)) & (2**80 - 1)
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 9562 variant
    return str(uuid.UUID(int=value))


@dataclass(frozen=True)
class Consent:
    """What the visitor granted; a :class:`Visitor`'s id (and its token) is sent only with
    ``analytics``."""

    analytics: bool = False
    ads: bool = False

    def wire(self) -> dict[str, bool]:
        return {"analytics": self.analytics, "ads": self.ads}


NO_CONSENT = Consent()


class Visitor:
    """A browser id the server issued (:meth:`Client.visitor`), with the token that proves it:
    nobody can name an id of their own or someone else's. Store ``bid`` and ``token`` with
    the visitor (a session, a cookie) and restore them with ``Visitor(bid=..., token=...)``;
    store them again after use, as the client renews the token (and a token past the renewal
    horizon gets a new id, which the client adopts here)."""

    def __init__(self, *, bid: str, token: str) -> None:
        self._lock = threading.Lock()
        self.bid = bid
        self.token = token
        self.renewed_at = 0.0  # monotonic; 0: restored, renewed before its first use

    def __repr__(self) -> str:
        return f"Visitor(bid={self.bid!r})"


@dataclass
class _Page:
    """A page event waiting for its batch; events of one visitor travel together."""

    event: dict[str, Any]
    visitor: Visitor | None
    consent: Consent
    user_agent: str | None


@dataclass
class _Ad:
    body: dict[str, Any]
    visitor: Visitor | None
    consent: Consent
    user_agent: str | None


@dataclass
class _Flush:
    done: threading.Event = field(default_factory=threading.Event)


class Client:
    """Queue events with :meth:`pageview`, :meth:`track`, :meth:`engagement` and
    :meth:`ad_event`; a background thread sends them. :meth:`flush` waits until what is queued
    was sent; :meth:`close` (run at exit) flushes for at most ``shutdown_timeout`` seconds."""

    def __init__(
        self,
        *,
        host: str,
        site: str,
        app: str | None = None,
        user_agent: str = "naboria-client/0.1 (Python)",
        batch_size: int = 50,
        flush_interval: float = 1.0,
        max_queue: int = 10_000,
        timeout: float = 10.0,
        retries: int = 5,
        backoff_factor: float = 0.5,
        backoff_max: float = 30.0,
        shutdown_timeout: float = 10.0,
        pool: urllib3.PoolManager | None = None,
    ) -> None:
        self.host = host.rstrip("/")
        self.site = site
        self.app = app
        self.user_agent = user_agent
        self.batch_size = max(1, min(MAX_BATCH, batch_size))
        self.flush_interval = flush_interval
        self.shutdown_timeout = shutdown_timeout
        # urllib3's Retry does the waiting: exponential backoff with jitter, Retry-After
        # honoured, POST retried too (each event has its id: a resend is stored once), and
        # read errors (the connection dropped after the request went out) retried as well.
        self._retry = urllib3.Retry(
            total=retries,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            backoff_jitter=backoff_factor,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=None,
            respect_retry_after_header=True,
            raise_on_status=False,
            raise_on_redirect=False,
            redirect=0,
        )
        self._http = pool or urllib3.PoolManager(timeout=urllib3.Timeout(total=timeout))
        self._queue: queue.Queue[_Page | _Ad | _Flush | None] = queue.Queue(max_queue)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="naboria-client", daemon=True)
        self._thread.start()
        # Flushed when the interpreter exits, without keeping the client alive for it.
        atexit.register(_close_at_exit, weakref.ref(self))

    # ---- what callers use ---------------------------------------------------------------

    def pageview(
        self,
        url: str,
        *,
        referrer: str | None = None,
        visitor: Visitor | None = None,
        consent: Consent = NO_CONSENT,
        user_agent: str | None = None,
        ts: int | None = None,
    ) -> str:
        """Queue a pageview of ``url``; the event's id is returned. ``visitor``: the visitor's
        browser id (:meth:`visitor`), sent only with analytics consent; without it the server
        counts the request's IP and user agent (those of this server: pass the visitor's
        ``user_agent``)."""
        event: dict[str, Any] = {"type": "pageview", "url": url}
        if referrer:
            event["referrer"] = referrer
        return self._page(event, visitor=visitor, consent=consent, user_agent=user_agent, ts=ts)

    def track(
        self,
        name: str,
        *,
        url: str,
        props: Mapping[str, str | int | float | bool] | None = None,
        visitor: Visitor | None = None,
        consent: Consent = NO_CONSENT,
        user_agent: str | None = None,
        ts: int | None = None,
    ) -> str:
        """Queue a custom event (a goal, a purchase...) with up to 30 properties."""
        event = {"type": "event", "name": name, "url": url, "props": dict(props or {})}
        return self._page(event, visitor=visitor, consent=consent, user_agent=user_agent, ts=ts)

    def engagement(
        self,
        *,
        url: str,
        visible_ms: int,
        scroll_depth: int = 0,
        visitor: Visitor | None = None,
        consent: Consent = NO_CONSENT,
        user_agent: str | None = None,
    ) -> str:
        """Queue the time a page was seen (a server that renders a reading session, say)."""
        event = {
            "type": "engagement",
            "url": url,
            "visible_ms": visible_ms,
            "scroll_depth": scroll_depth,
        }
        return self._page(event, visitor=visitor, consent=consent, user_agent=user_agent, ts=None)

    def ad_event(
        self,
        kind: str,
        *,
        impression_token: str,
        display: int = 1,
        url: str | None = None,
        visitor: Visitor | None = None,
        consent: Consent = NO_CONSENT,
        user_agent: str | None = None,
    ) -> None:
        """Queue an ad event (``impression``, ``viewable``, ``click``...) of an ad this server
        rendered from a listing item (:meth:`listing`), named by the item's
        ``impression_token``. Sent one by one, in order, each confirmed by the server; a click
        answered 409 (its impression not recorded yet) is retried."""
        body: dict[str, Any] = {
            "type": kind,
            "impression_token": impression_token,
            "display": display,
            "ts": int(time.time() * 1000),
        }
        if url:
            body["url"] = url
        self._put(_Ad(body, visitor, consent, user_agent))

    def visitor(self) -> Visitor:
        """A new browser id from the server (``/init``), for a visitor who granted analytics
        consent and has none stored yet. Raises on failure."""
        answer = self._init({"site": self.site})
        if answer is None:
            raise RuntimeError("/init gave no browser id")
        made = Visitor(bid=answer["bid"], token=answer["token"])
        made.renewed_at = time.monotonic()
        return made

    def listing(
        self, placement: str, *, visitor: Visitor | None = None, consent: Consent = NO_CONSENT
    ) -> dict[str, Any]:
        """A placement's listing (``GET /ads/listing``), for a page this server renders: its
        ``ads`` carry the ``impression_token`` of their events. Raises on failure."""
        query = f"/ads/listing?placement={quote(placement)}"
        proof = self._proof(visitor) if visitor and consent.analytics and consent.ads else None
        if proof:
            query += f"&bid={quote(proof[0])}&token={quote(proof[1])}&ads=1"
        response = self._request("GET", query, None, self.user_agent)
        if response.status != 200:
            raise RuntimeError(f"listing of {placement!r} answered {response.status}")
        answer: dict[str, Any] = json.loads(response.data)
        return answer

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far was sent (or dropped); False on timeout."""
        if self._closed:
            return self._queue.empty()
        marker = _Flush()
        self._queue.put(marker)
        return marker.done.wait(timeout)

    def close(self) -> None:
        """Send what is queued (for at most ``shutdown_timeout`` seconds), then stop."""
        if self._closed:
            return
        self.flush(self.shutdown_timeout)
        self._closed = True
        with contextlib.suppress(queue.Full):  # the thread stops at the flush's end anyway
            self._queue.put_nowait(None)
        self._thread.join(timeout=1)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the background thread ----------------------------------------------------------

    def _page(
        self,
        event: dict[str, Any],
        *,
        visitor: Visitor | None,
        consent: Consent,
        user_agent: str | None,
        ts: int | None,
    ) -> str:
        event["ts"] = int(time.time() * 1000) if ts is None else ts
        event["id"] = uuid7(event["ts"])
        self._put(_Page(event, visitor, consent, user_agent))
        return str(event["id"])

    def _put(self, item: _Page | _Ad) -> None:
        if self._closed:
            raise RuntimeError("the Naboria client is closed")
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            logger.warning("naboria: queue full (%d events): event dropped", self._queue.maxsize)

    def _run(self) -> None:
        pages: list[_Page] = []
        deadline: float | None = None
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = _Flush()  # the flush interval passed
                item.done.set()
            if isinstance(item, _Page):
                pages.append(item)
                if deadline is None:
                    deadline = time.monotonic() + self.flush_interval
                if len(pages) < self.batch_size:
                    continue
            if isinstance(item, _Ad):
                self._send_pages(pages)  # page events made before it go first
                pages = []
                self._send_ad(item)
                continue
            self._send_pages(pages)
            pages, deadline = [], None
            if isinstance(item, _Flush):
                item.done.set()
            elif item is None:
                return

    def _send_pages(self, pages: list[_Page]) -> None:
        groups: dict[tuple[Visitor | None, Consent, str | None], list[dict[str, Any]]] = {}
        for page in pages:
            visitor = page.visitor if page.consent.analytics else None
            groups.setdefault((visitor, page.consent, page.user_agent), []).append(page.event)
        for (visitor, consent, user_agent), events in groups.items():
            for start in range(0, len(events), self.batch_size):
                batch = events[start : start + self.batch_size]
                self._send_batch(batch, visitor, consent, user_agent)

    def _who(self, visitor: Visitor | None, consent: Consent) -> dict[str, Any]:
        envelope: dict[str, Any] = {"consent": consent.wire()}
        proof = self._proof(visitor) if visitor and consent.analytics else None
        if proof:
            envelope.update(bid=proof[0], token=proof[1])
        if self.app:
            envelope["app"] = self.app
        return envelope

    def _send_batch(
        self,
        events: list[dict[str, Any]],
        visitor: Visitor | None,
        consent: Consent,
        agent: str | None,
    ) -> None:
        for _ in range(2):  # a second time only with a renewed token
            envelope = {"site": self.site, **self._who(visitor, consent), "events": events}
            envelope["sent_at"] = int(time.time() * 1000)
            try:
                response = self._request("POST", "/collect", envelope, agent)
            except HTTPError as error:
                logger.warning("naboria: %d events not sent (%s); dropped", len(events), error)
                return
            if response.status == 403 and visitor is not None and "token" in envelope:
                visitor.renewed_at = 0.0  # expired meanwhile, or the site's secret rotated
                continue
            if response.status == 413 and len(events) > 1:
                half = len(events) // 2
                self._send_batch(events[:half], visitor, consent, agent)
                self._send_batch(events[half:], visitor, consent, agent)
                return
            if response.status == 202:
                for refused in json.loads(response.data).get("rejected", []):
                    logger.warning(
                        "naboria: event %s refused: %s",
                        events[refused["index"]]["id"],
                        refused["error"],
                    )
                return
            _log_refusal(response, f"{len(events)} page events")
            return

    def _send_ad(self, item: _Ad) -> None:
        body = {**self._who(item.visitor, item.consent), **item.body}
        for attempt in range(self._retry.total or 1):
            try:
                response = self._request("POST", "/ad-event", body, item.user_agent)
            except HTTPError as error:
                logger.warning("naboria: ad event not sent (%s); dropped", error)
                return
            if response.status != 409:
                if response.status != 200:
                    _log_refusal(response, f"ad event {item.body['type']}")
                return
            # A click whose impression is still on its way (from another server, say).
            time.sleep(min(self._retry.backoff_max, 0.5 * 2**attempt))
        logger.warning("naboria: click of an ad whose impression was never recorded; dropped")

    def _proof(self, visitor: Visitor) -> tuple[str, str] | None:
        """The visitor's (bid, fresh token), renewed by /init with the token it has after 4
        minutes (the server may answer with a new id: adopted); None if /init cannot be reached
        (the events then go without an id)."""
        with visitor._lock:
            if time.monotonic() - visitor.renewed_at >= RENEW_TOKEN_AFTER_SECONDS:
                query = {"site": self.site, "bid": visitor.bid, "token": visitor.token}
                answer = self._init(query)
                if answer is None:
                    return None
                visitor.bid, visitor.token = answer["bid"], answer["token"]
                visitor.renewed_at = time.monotonic()
            return visitor.bid, visitor.token

    def _init(self, query: dict[str, str]) -> dict[str, str] | None:
        path = "/init?" + "&".join(f"{name}={quote(value)}" for name, value in query.items())
        try:
            response = self._request("GET", path, None, self.user_agent)
        except HTTPError as error:
            logger.warning("naboria: /init failed (%s)", error)
            return None
        if response.status != 200:
            _log_refusal(response, "/init")
            return None
        answer = json.loads(response.data)
        return {"bid": str(answer["bid"]), "token": str(answer["token"])}

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None, agent: str | None
    ) -> urllib3.BaseHTTPResponse:
        headers = {"User-Agent": agent or self.user_agent}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body, separators=(",", ":")).encode()
        return self._http.request(
            method, self.host + path, body=data, headers=headers, retries=self._retry.new()
        )


def _log_refusal(response: urllib3.BaseHTTPResponse, what: str) -> None:
    try:
        reason = json.loads(response.data).get("error", "")
    except ValueError:
        reason = response.data[:200].decode(errors="replace")
    logger.warning("naboria: %s refused (%d): %s; dropped", what, response.status, reason)


def _close_at_exit(reference: weakref.ref[Client]) -> None:
    client = reference()
    if client is not None:
        client.close()
