"""Delivery counters: impressions per campaign (today, in all) and per visitor and campaign
(frequency caps), what each campaign has spent (today, in all; whole micro-units of its
currency), and the ad events already counted (so a retried event is stored and counted once).
Redis when REDIS_URL is set, shared by every process; otherwise a SQLite file in
NABORIA_VAR_DIR (the embedded profile), which outlives restarts. "Today" is the UTC day.

Spend is counted where its billable events are: a CPM campaign's counted impressions and a CPC
campaign's counted clicks when they are stored (ads.services.ad_event_store, at the rate
published when the event is counted), a CPA campaign's attributed conversions by the periodic
job (ads.services.conversions_spend_count). Read by every decision.
Entry points: get_counters(), reset_counters(), count_impression(), click_price().
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from asgiref.sync import sync_to_async
from django.conf import settings

from ads.delivery import CampaignDelivery, Pricing
from ads.snapshot import Snapshot, current, current_if_fresh

DAY_SECONDS = 86400
SEEN_EVENT_SECONDS = 2 * DAY_SECONDS
REDIS_CONNECTIONS = 32
COUNTERS_FILE = "ad_counters.sqlite3"  # in NABORIA_VAR_DIR, without Redis
# Campaign totals are read by every decision of every stream; a process reuses them this long,
# and while it reads them again (caps may be overshot by what all processes serve meanwhile).
CAMPAIGN_DELIVERY_CACHE_SECONDS = 1.0


def _day(now: float) -> int:
    return int(now // DAY_SECONDS)


def _bucket(now: float, period_seconds: int) -> int:
    return int(now // period_seconds) if period_seconds else 0


class Counters(Protocol):
    async def claim(self, key: str) -> bool: ...

    async def claimed(self, key: str) -> bool: ...

    async def record_impression(
        self, *, campaign_id: int, visitor_id: str, period_seconds: int, spend_micros: int = 0
    ) -> None: ...

    async def record_spend(self, *, campaign_id: int, micros: int) -> None: ...

    async def campaign_delivery(
        self, campaign_ids: Iterable[int]
    ) -> dict[int, CampaignDelivery]: ...

    async def frequency(self, visitor_id: str, periods: dict[int, int]) -> dict[int, int]: ...


class SqliteCounters:
    """The embedded profile's counters: a SQLite file in NABORIA_VAR_DIR, so caps, pacing and
    the events already counted survive a restart (in memory, a restart let a capped campaign
    serve its cap again and a retried event be counted twice). WAL with synchronous=NORMAL:
    a write is not fsynced, but survives the process being killed; each call is a few tens of
    microseconds on the event loop."""

    # Expired keys are deleted once per this many writes.
    PURGE_EVERY = 1000

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")  # a management command may write too
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS counters"
            " (key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires REAL)"
        )
        self._writes = 0

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        # IMMEDIATE: the write lock at once, so a read-then-write never fails to upgrade.
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _get(self, keys: list[str], now: float) -> list[int]:
        with self._lock:
            found = dict(
                self._db.execute(
                    "SELECT key, value FROM counters"
                    " WHERE key IN (SELECT value FROM json_each(?))"
                    " AND (expires IS NULL OR expires > ?)",
                    (json.dumps(keys), now),
                ).fetchall()
            )
        return [found.get(key, 0) for key in keys]

    def _add(self, increments: list[tuple[str, int, float | None]], now: float) -> None:
        """Add each amount to its key; a key that had expired starts again from the amount,
        with ``ttl``."""
        with self._transaction():
            for key, amount, ttl in increments:
                self._db.execute(
                    "INSERT INTO counters (key, value, expires) VALUES (?1, ?4, ?2)"
                    " ON CONFLICT (key) DO UPDATE SET"
                    " value = CASE WHEN expires <= ?3 THEN ?4 ELSE value + ?4 END,"
                    " expires = CASE WHEN expires <= ?3 THEN ?2 ELSE expires END",
                    (key, None if ttl is None else now + ttl, now, amount),
                )
            self._writes += 1
            if self._writes % self.PURGE_EVERY == 0:
                self._db.execute("DELETE FROM counters WHERE expires <= ?", (now,))

    async def claimed(self, key: str) -> bool:
        return self._get([f"seen:{key}"], time.time())[0] > 0

    async def claim(self, key: str) -> bool:
        now = time.time()
        with self._transaction():
            self._db.execute(
                "DELETE FROM counters WHERE key = ? AND expires <= ?", (f"seen:{key}", now)
            )
            claimed = self._db.execute(
                "INSERT OR IGNORE INTO counters (key, value, expires) VALUES (?, 1, ?)",
                (f"seen:{key}", now + SEEN_EVENT_SECONDS),
            ).rowcount
        return claimed == 1

    async def record_impression(
        self, *, campaign_id: int, visitor_id: str, period_seconds: int, spend_micros: int = 0
    ) -> None:
        now = time.time()
        self._add(
            _impression_increments(campaign_id, visitor_id, period_seconds, spend_micros, now), now
        )

    async def record_spend(self, *, campaign_id: int, micros: int) -> None:
        now = time.time()
        self._add(_spend_increments(campaign_id, micros, now), now)

    async def campaign_delivery(self, campaign_ids: Iterable[int]) -> dict[int, CampaignDelivery]:
        campaigns = list(campaign_ids)
        if not campaigns:
            return {}
        now = time.time()
        keys = [key for campaign in campaigns for key in _delivery_keys(campaign, now)]
        return _deliveries(campaigns, self._get(keys, now))

    async def frequency(self, visitor_id: str, periods: dict[int, int]) -> dict[int, int]:
        capped = [(campaign, period) for campaign, period in periods.items() if period]
        if not capped:
            return {}
        now = time.time()
        keys = [_frequency_key(campaign, visitor_id, period, now) for campaign, period in capped]
        values = self._get(keys, now)
        return {campaign: value for (campaign, _), value in zip(capped, values, strict=True)}

    def close(self) -> None:
        with self._lock:
            self._db.close()


class RedisCounters:
    PREFIX = "naboria:ads:"

    def __init__(self, url: str) -> None:
        self.url = url
        # An asyncio Redis client belongs to the event loop it was made in.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._pending: dict[asyncio.AbstractEventLoop, list[tuple[list[str], Any]]] = {}

    @property
    def redis(self) -> Any:
        import redis.asyncio

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            # Bounded: thousands of streams re-deciding at once wait for a connection instead of
            # each opening one.
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                self.url, max_connections=REDIS_CONNECTIONS, timeout=10
            )
            client = self._clients[loop] = redis.asyncio.Redis(connection_pool=pool)
        return client

    async def claim(self, key: str) -> bool:
        return bool(
            await self.redis.set(f"{self.PREFIX}seen:{key}", 1, nx=True, ex=SEEN_EVENT_SECONDS)
        )

    async def claimed(self, key: str) -> bool:
        return bool(await self.redis.exists(f"{self.PREFIX}seen:{key}"))

    async def record_impression(
        self, *, campaign_id: int, visitor_id: str, period_seconds: int, spend_micros: int = 0
    ) -> None:
        increments = _impression_increments(
            campaign_id, visitor_id, period_seconds, spend_micros, time.time()
        )
        await self._add(increments)

    async def record_spend(self, *, campaign_id: int, micros: int) -> None:
        await self._add(_spend_increments(campaign_id, micros, time.time()))

    async def _add(self, increments: list[tuple[str, int, float | None]]) -> None:
        """Add each amount to its key, in one round trip; a key with a ``ttl`` expires that
        long after its last write."""
        pipe = self.redis.pipeline(transaction=False)
        for key, amount, ttl in increments:
            pipe.incrby(f"{self.PREFIX}{key}", amount)
            if ttl is not None:
                pipe.expire(f"{self.PREFIX}{key}", int(ttl))
        await pipe.execute()

    async def campaign_delivery(self, campaign_ids: Iterable[int]) -> dict[int, CampaignDelivery]:
        campaigns = list(campaign_ids)
        if not campaigns:
            return {}
        now = time.time()
        keys = [
            f"{self.PREFIX}{key}" for campaign in campaigns for key in _delivery_keys(campaign, now)
        ]
        return _deliveries(campaigns, [int(value or 0) for value in await self.redis.mget(keys)])

    async def frequency(self, visitor_id: str, periods: dict[int, int]) -> dict[int, int]:
        capped = [(campaign, period) for campaign, period in periods.items() if period]
        if not capped:
            return {}
        now = time.time()
        keys = [
            f"{self.PREFIX}{_frequency_key(campaign, visitor_id, period, now)}"
            for campaign, period in capped
        ]
        values = await self._coalesced_mget(keys)
        return {
            campaign: int(value or 0) for (campaign, _), value in zip(capped, values, strict=True)
        }

    async def _coalesced_mget(self, keys: list[str]) -> list[Any]:
        """MGET, with the reads that concurrent decisions make in the same turn of the event
        loop sent as one command (after a campaign change thousands of streams re-decide at
        once)."""
        loop = asyncio.get_running_loop()
        pending = self._pending.get(loop)
        if pending is None:
            pending = self._pending[loop] = []
            loop.call_soon(lambda: loop.create_task(self._flush(loop)))
        answer: asyncio.Future[list[Any]] = loop.create_future()
        pending.append((keys, answer))
        return await answer

    async def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._pending.pop(loop, [])
        try:
            values = await self.redis.mget([key for keys, _ in batch for key in keys])
        except Exception as error:
            for _, answer in batch:
                answer.set_exception(error)
            return
        start = 0
        for keys, answer in batch:
            answer.set_result(values[start : start + len(keys)])
            start += len(keys)


# (key, amount, seconds to live or None) of what a counted impression adds; the same keys in
# both backends.
def _impression_increments(
    campaign_id: int, visitor_id: str, period_seconds: int, spend_micros: int, now: float
) -> list[tuple[str, int, float | None]]:
    increments: list[tuple[str, int, float | None]] = [
        (f"c:{campaign_id}:total", 1, None),
        (f"c:{campaign_id}:d:{_day(now)}", 1, 2 * DAY_SECONDS),
    ]
    if period_seconds:
        key = _frequency_key(campaign_id, visitor_id, period_seconds, now)
        increments.append((key, 1, period_seconds))
    if spend_micros:
        increments.extend(_spend_increments(campaign_id, spend_micros, now))
    return increments


def _frequency_key(campaign_id: int, visitor_id: str, period_seconds: int, now: float) -> str:
    """The visitor's impressions of the campaign in the frequency period holding ``now``."""
    return f"f:{campaign_id}:{visitor_id}:{_bucket(now, period_seconds)}"


def _spend_increments(
    campaign_id: int, micros: int, now: float
) -> list[tuple[str, int, float | None]]:
    return [
        (f"s:{campaign_id}:total", micros, None),
        (f"s:{campaign_id}:d:{_day(now)}", micros, 2 * DAY_SECONDS),
    ]


# The keys a decision reads per campaign, in the order _deliveries takes their values.
def _delivery_keys(campaign_id: int, now: float) -> tuple[str, str, str, str]:
    day = _day(now)
    return (
        f"c:{campaign_id}:d:{day}",
        f"c:{campaign_id}:total",
        f"s:{campaign_id}:d:{day}",
        f"s:{campaign_id}:total",
    )


def _deliveries(campaigns: list[int], values: list[int]) -> dict[int, CampaignDelivery]:
    deliveries = {}
    for index, campaign in enumerate(campaigns):
        today, lifetime, spent_today, spent = values[4 * index : 4 * index + 4]
        deliveries[campaign] = CampaignDelivery(
            today=today, lifetime=lifetime, spent_today=spent_today, spent=spent
        )
    return deliveries


_counters: Counters | None = None


def get_counters() -> Counters:
    global _counters
    if _counters is None:
        _counters = (
            RedisCounters(settings.REDIS_URL)
            if settings.REDIS_URL
            else SqliteCounters(settings.VAR_DIR / COUNTERS_FILE)
        )
    return _counters


def reset_counters() -> None:
    global _counters
    if isinstance(_counters, SqliteCounters):
        _counters.close()
    _counters = None
    _campaign_delivery.clear()
    _reading.clear()


async def _published() -> Snapshot:
    # Reloading the snapshot reads MongoDB: off the event loop, and only when it is due.
    return current_if_fresh() or await sync_to_async(current, thread_sensitive=False)()


_NOT_SOLD = Pricing()
# The pricing of each published campaign, built once per snapshot generation.
_pricing: tuple[int, dict[int, Pricing]] = (-1, {})


def _pricing_of(snapshot: Snapshot, campaign_id: int) -> Pricing:
    """The campaign's pricing as published; a campaign that is not live any more spends
    nothing (its events are still stored and reported)."""
    global _pricing
    generation, by_campaign = _pricing
    if generation != snapshot.generation:
        by_campaign = {
            ad.campaign_id: ad.pricing for ads in snapshot.ads_by_site.values() for ad in ads
        }
        _pricing = (snapshot.generation, by_campaign)
    return by_campaign.get(campaign_id, _NOT_SOLD)


async def count_impression(*, campaign_id: int, visitor_id: str) -> None:
    """Count a stored impression for its campaign's caps, the visitor's frequency cap and, for
    a CPM campaign, its spend (the rate / 1,000)."""
    snapshot = await _published()
    await get_counters().record_impression(
        campaign_id=campaign_id,
        visitor_id=visitor_id,
        period_seconds=snapshot.campaign_frequency_periods.get(campaign_id, 0),
        spend_micros=_pricing_of(snapshot, campaign_id).impression_micros,
    )


async def click_price(*, campaign_id: int) -> int:
    """What a counted click of the campaign spends: its rate for a CPC campaign, else 0."""
    return _pricing_of(await _published(), campaign_id).click_micros


_campaign_delivery: dict[int, tuple[float, CampaignDelivery]] = {}
# Per event loop, the reads of campaign totals under way, by campaign. When each decision that
# found the totals stale sent its own read, thousands of streams deciding at once queued for
# the bounded Redis pool until its timeout, and their streams failed without a first ad.
_reading: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, asyncio.Task[None]]] = (
    weakref.WeakKeyDictionary()
)


async def campaign_delivery(campaign_ids: Iterable[int]) -> dict[int, CampaignDelivery]:
    """Campaign totals, read from the counters at most once a second per process: the decision
    that finds them stale reads them again, and the decisions made during that read use the
    totals read before it (or wait for it, for totals never read)."""
    now = time.monotonic()
    wanted = list(campaign_ids)
    stale = [
        campaign
        for campaign in wanted
        if (entry := _campaign_delivery.get(campaign)) is None or entry[0] < now
    ]
    if stale:
        loop = asyncio.get_running_loop()
        reading = _reading.setdefault(loop, {})
        unread = [campaign for campaign in stale if campaign not in reading]
        if unread:
            read = loop.create_task(_read_campaign_delivery(unread))
            for campaign in unread:
                reading[campaign] = read
            read.add_done_callback(lambda task: _read_done(reading, unread, task))
        awaited = {
            reading[campaign]
            for campaign in stale
            if campaign in unread or campaign not in _campaign_delivery
        }
        for read in awaited:
            # Shielded: a stream that disconnects while it waits must not cancel the read.
            await asyncio.shield(read)
    return {campaign: _campaign_delivery[campaign][1] for campaign in wanted}


async def _read_campaign_delivery(campaigns: list[int]) -> None:
    fresh = await get_counters().campaign_delivery(campaigns)
    expires = time.monotonic() + CAMPAIGN_DELIVERY_CACHE_SECONDS
    for campaign, totals in fresh.items():
        _campaign_delivery[campaign] = (expires, totals)


def _read_done(
    reading: dict[int, asyncio.Task[None]],
    campaigns: list[int],
    task: asyncio.Task[None],
) -> None:
    for campaign in campaigns:
        if reading.get(campaign) is task:
            del reading[campaign]
    if not task.cancelled():
        task.exception()  # retrieved: a failed read is raised to each decision that waited
