"""Delivery counters: impressions per campaign (today, in all) and per visitor and campaign
(frequency caps), and the ad events already stored (so a retried event is stored and counted
once). Redis when REDIS_URL is set, shared by every process; otherwise a SQLite file in
NABORIA_VAR_DIR (the embedded profile), which outlives restarts.

Written when an ad event is stored (ads.services.ad_event_store), read by every decision.
Entry points: get_counters(), reset_counters(), count_impression().
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

from ads.delivery import CampaignDelivery
from ads.snapshot import current, current_if_fresh

DAY_SECONDS = 86400
SEEN_EVENT_SECONDS = 2 * DAY_SECONDS
REDIS_CONNECTIONS = 32
COUNTERS_FILE = "ad_counters.sqlite3"  # in NABORIA_VAR_DIR, without Redis
# Campaign totals are read by every decision of every stream; a process reuses them this long
# (caps may be overshot by what all processes serve in that time).
CAMPAIGN_DELIVERY_CACHE_SECONDS = 1.0


def _day(now: float) -> int:
    return int(now // DAY_SECONDS)


def _bucket(now: float, period_seconds: int) -> int:
    return int(now // period_seconds) if period_seconds else 0


class Counters(Protocol):
    async def claim(self, key: str) -> bool: ...

    async def record_impression(
        self, *, campaign_id: int, visitor_id: str, period_seconds: int
    ) -> None: ...

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

    def _incr(self, increments: list[tuple[str, float | None]], now: float) -> None:
        """Add one to each key; a key that had expired starts again at one, with ``ttl``."""
        with self._transaction():
            for key, ttl in increments:
                self._db.execute(
                    "INSERT INTO counters (key, value, expires) VALUES (?1, 1, ?2)"
                    " ON CONFLICT (key) DO UPDATE SET"
                    " value = CASE WHEN expires <= ?3 THEN 1 ELSE value + 1 END,"
                    " expires = CASE WHEN expires <= ?3 THEN ?2 ELSE expires END",
                    (key, None if ttl is None else now + ttl, now),
                )
            self._writes += 1
            if self._writes % self.PURGE_EVERY == 0:
                self._db.execute("DELETE FROM counters WHERE expires <= ?", (now,))

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
        self, *, campaign_id: int, visitor_id: str, period_seconds: int
    ) -> None:
        now = time.time()
        increments: list[tuple[str, float | None]] = [
            (f"c:{campaign_id}:total", None),
            (f"c:{campaign_id}:d:{_day(now)}", 2 * DAY_SECONDS),
        ]
        if period_seconds:
            key = f"f:{campaign_id}:{visitor_id}:{_bucket(now, period_seconds)}"
            increments.append((key, period_seconds))
        self._incr(increments, now)

    async def campaign_delivery(self, campaign_ids: Iterable[int]) -> dict[int, CampaignDelivery]:
        campaigns = list(campaign_ids)
        if not campaigns:
            return {}
        now = time.time()
        keys = [
            key
            for campaign in campaigns
            for key in (f"c:{campaign}:d:{_day(now)}", f"c:{campaign}:total")
        ]
        values = self._get(keys, now)
        return {
            campaign: CampaignDelivery(today=values[2 * index], lifetime=values[2 * index + 1])
            for index, campaign in enumerate(campaigns)
        }

    async def frequency(self, visitor_id: str, periods: dict[int, int]) -> dict[int, int]:
        capped = [(campaign, period) for campaign, period in periods.items() if period]
        if not capped:
            return {}
        now = time.time()
        keys = [f"f:{campaign}:{visitor_id}:{_bucket(now, period)}" for campaign, period in capped]
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

    async def record_impression(
        self, *, campaign_id: int, visitor_id: str, period_seconds: int
    ) -> None:
        now = time.time()
        prefix = self.PREFIX
        pipe = self.redis.pipeline(transaction=False)
        pipe.incr(f"{prefix}c:{campaign_id}:total")
        daily = f"{prefix}c:{campaign_id}:d:{_day(now)}"
        pipe.incr(daily)
        pipe.expire(daily, 2 * DAY_SECONDS)
        if period_seconds:
            key = f"{prefix}f:{campaign_id}:{visitor_id}:{_bucket(now, period_seconds)}"
            pipe.incr(key)
            pipe.expire(key, period_seconds)
        await pipe.execute()

    async def campaign_delivery(self, campaign_ids: Iterable[int]) -> dict[int, CampaignDelivery]:
        campaigns = list(campaign_ids)
        if not campaigns:
            return {}
        day = _day(time.time())
        keys = [
            key
            for campaign in campaigns
            for key in (f"{self.PREFIX}c:{campaign}:d:{day}", f"{self.PREFIX}c:{campaign}:total")
        ]
        values = [int(value or 0) for value in await self.redis.mget(keys)]
        return {
            campaign: CampaignDelivery(today=values[2 * index], lifetime=values[2 * index + 1])
            for index, campaign in enumerate(campaigns)
        }

    async def frequency(self, visitor_id: str, periods: dict[int, int]) -> dict[int, int]:
        capped = [(campaign, period) for campaign, period in periods.items() if period]
        if not capped:
            return {}
        now = time.time()
        keys = [
            f"{self.PREFIX}f:{campaign}:{visitor_id}:{_bucket(now, period)}"
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


async def count_impression(*, campaign_id: int, visitor_id: str) -> None:
    """Count a stored impression for its campaign's caps and the visitor's frequency cap."""
    # Reloading the snapshot reads MongoDB: off the event loop, and only when it is due.
    snapshot = current_if_fresh() or await sync_to_async(current, thread_sensitive=False)()
    period = snapshot.campaign_frequency_periods.get(campaign_id, 0)
    await get_counters().record_impression(
        campaign_id=campaign_id,
        visitor_id=visitor_id,
        period_seconds=period,
    )


_campaign_delivery: dict[int, tuple[float, CampaignDelivery]] = {}


async def campaign_delivery(campaign_ids: Iterable[int]) -> dict[int, CampaignDelivery]:
    """Campaign totals, read from the counters at most once a second per process."""
    now = time.monotonic()
    wanted = list(campaign_ids)
    stale = [
        campaign
        for campaign in wanted
        if (entry := _campaign_delivery.get(campaign)) is None or entry[0] < now
    ]
    if stale:
        fresh = await get_counters().campaign_delivery(stale)
        expires = now + CAMPAIGN_DELIVERY_CACHE_SECONDS
        for campaign, totals in fresh.items():
            _campaign_delivery[campaign] = (expires, totals)
    return {campaign: _campaign_delivery[campaign][1] for campaign in wanted}
