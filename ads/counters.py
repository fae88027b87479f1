"""Delivery counters: impressions per campaign (today, in all) and per visitor and campaign
(frequency caps), and the ad events already stored (so a retried event is stored and counted
once). Redis when REDIS_URL is set, shared by every process; in process otherwise (the embedded
profile has one process).

Written when an ad event is stored (ads.services.ad_event_store), read by every decision.
Entry points: get_counters(), reset_counters(), count_impression().
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Iterable
from typing import Any, Protocol

from asgiref.sync import sync_to_async
from django.conf import settings

from ads.delivery import CampaignDelivery
from ads.snapshot import current, current_if_fresh

DAY_SECONDS = 86400
SEEN_EVENT_SECONDS = 2 * DAY_SECONDS
REDIS_CONNECTIONS = 32
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


class MemoryCounters:
    def __init__(self) -> None:
        self.values: dict[str, int] = {}
        self.expiry: dict[str, float] = {}

    def _get(self, key: str, now: float) -> int:
        if self.expiry.get(key, now + 1) <= now:
            self.values.pop(key, None)
            self.expiry.pop(key, None)
        return self.values.get(key, 0)

    def _incr(self, key: str, now: float, ttl: float | None = None) -> None:
        self.values[key] = self._get(key, now) + 1
        if ttl is not None:
            self.expiry.setdefault(key, now + ttl)

    async def claim(self, key: str) -> bool:
        now = time.time()
        if self._get(f"seen:{key}", now):
            return False
        self._incr(f"seen:{key}", now, SEEN_EVENT_SECONDS)
        return True

    async def record_impression(
        self, *, campaign_id: int, visitor_id: str, period_seconds: int
    ) -> None:
        now = time.time()
        self._incr(f"c:{campaign_id}:total", now)
        self._incr(f"c:{campaign_id}:d:{_day(now)}", now, 2 * DAY_SECONDS)
        if period_seconds:
            key = f"f:{campaign_id}:{visitor_id}:{_bucket(now, period_seconds)}"
            self._incr(key, now, period_seconds)

    async def campaign_delivery(self, campaign_ids: Iterable[int]) -> dict[int, CampaignDelivery]:
        now = time.time()
        return {
            campaign: CampaignDelivery(
                today=self._get(f"c:{campaign}:d:{_day(now)}", now),
                lifetime=self._get(f"c:{campaign}:total", now),
            )
            for campaign in campaign_ids
        }

    async def frequency(self, visitor_id: str, periods: dict[int, int]) -> dict[int, int]:
        now = time.time()
        return {
            campaign: self._get(f"f:{campaign}:{visitor_id}:{_bucket(now, period)}", now)
            for campaign, period in periods.items()
            if period
        }


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
        _counters = RedisCounters(settings.REDIS_URL) if settings.REDIS_URL else MemoryCounters()
    return _counters


def reset_counters() -> None:
    global _counters
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
