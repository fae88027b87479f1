"""Reads of recommendations: a site's most visited pages (ClickHouse, for the periodic job), the
popular list the job stored (Redis, kept in process for a few seconds: it is read by every
request), and the items recommended to a visitor (leaving out the pages they visited).

An item is a page of the site: its path, the URL it is most often visited at (without query
or fragment) and its title as pages reported it (the path when none did).

Entry points: top_pages, popular_items, recommended_items, forget_popular (tests).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any, TypedDict

import msgspec

from naboria import clickhouse, redis_client
from recs import keys

POPULAR_DAYS = 7
POPULAR_SIZE = 50
# Every request reads its site's popular list: a process keeps it this long (the job rebuilds
# it every few minutes, so a few seconds more change nothing).
POPULAR_CACHE_SECONDS = 10.0


class Item(TypedDict):
    path: str
    url: str
    title: str


def top_pages(*, site_id: str, days: int = POPULAR_DAYS, limit: int = POPULAR_SIZE) -> list[Any]:
    """(path, URL, visitors) of the site's pages with the most distinct visitors over the last
    ``days`` days, most first: pageviews of people (bots never count), each visitor once, so
    a retried or duplicated event changes nothing. The URL is the page's most frequent one,
    without query string or fragment."""
    sql = """
        SELECT pathname,
               topK(1)(cutQueryStringAndFragment(url))[1] AS page_url,
               uniqExact(visitor_id) AS visitors
        FROM page_events
        WHERE site_id = {site:String} AND event_type = 'pageview' AND is_bot = 0
          AND timestamp >= now64(3) - toIntervalDay({days:UInt16})
        GROUP BY pathname
        ORDER BY visitors DESC, pathname
        LIMIT {limit:UInt32}
    """
    parameters = {"site": site_id, "days": days, "limit": limit}
    return list(clickhouse.get_client().query(sql, parameters=parameters).result_rows)


_items_decoder = msgspec.json.Decoder(list[Item])
_popular: dict[str, tuple[float, list[Item]]] = {}


async def popular_items(*, site_id: str) -> list[Item]:
    """The site's popular pages as the periodic job last stored them, most visited first
    (empty until it has run once for the site)."""
    cached = _popular.get(site_id)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    stored = await redis_client.async_client().get(keys.popular(site_id))
    items = _items_decoder.decode(stored) if stored else []
    if len(_popular) > 10_000:  # unknown sites must not grow it without bound
        _popular.clear()
    _popular[site_id] = (time.monotonic() + POPULAR_CACHE_SECONDS, items)
    return items


def forget_popular() -> None:
    _popular.clear()


class _VisitedLookups:
    """Whether a visitor visited each of some paths (ZMSCORE), for the requests of one event
    loop: the lookups that requests make in the same turn of the loop go to Redis as one
    pipeline (the "auto-pipelining" of ioredis). Most of a lookup's cost is the client's, not
    Redis's (about 0.13 ms of CPU for one command against 0.05 ms each in a pipeline on the
    benchmark machine), and requests arrive together under load; a lone lookup is sent alone."""

    def __init__(self) -> None:
        self._pending: list[tuple[str, list[str], asyncio.Future[list[float | None]]]] = []
        self._sending: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    async def scores(self, *, key: str, members: list[str]) -> list[float | None]:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[list[float | None]] = loop.create_future()
        self._pending.append((key, members, answer))
        if len(self._pending) == 1:
            # Sent two turns of the loop later (a callback, then the task's first step), so the
            # requests read in this turn and the next have made their lookups: a burst's
            # requests are often read over more than one turn.
            loop.call_soon(self._start_sending, loop)
        return await answer

    def _start_sending(self, loop: asyncio.AbstractEventLoop) -> None:
        sending = loop.create_task(self._send())
        self._sending.add(sending)
        sending.add_done_callback(self._sending.discard)

    async def _send(self) -> None:
        batch, self._pending = self._pending, []
        client = redis_client.async_client()
        try:
            if len(batch) == 1:
                key, members, _ = batch[0]
                results = [await client.zmscore(key, members)]
            else:
                async with client.pipeline(transaction=False) as pipeline:
                    for key, members, _ in batch:
                        pipeline.zmscore(key, members)
                    results = await pipeline.execute()
        except Exception as error:  # RedisError for each waiting request (503), whatever it is
            for *_, answer in batch:
                if not answer.done():
                    answer.set_exception(error)
            return
        for (*_, answer), result in zip(batch, results, strict=True):
            if not answer.done():  # its request may have been cancelled
                answer.set_result(result)


_lookups: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _VisitedLookups] = (
    weakref.WeakKeyDictionary()
)


async def recommended_items(
    *, site_id: str, current_path: str, visitor: str | None, limit: int
) -> list[Item]:
    """The site's most popular pages but the one at ``current_path`` and, for ``visitor`` (a
    browser id the caller verified, with consent), those they visited in the last 7 days; at
    most ``limit``. One Redis lookup whatever the visitor's number of visits: whether each
    candidate (at most POPULAR_SIZE) was visited, not the visits themselves."""
    candidates = [
        item for item in await popular_items(site_id=site_id) if item["path"] != current_path
    ]
    if visitor is None or not candidates:
        return candidates[:limit]
    lookups = _lookups.setdefault(asyncio.get_running_loop(), _VisitedLookups())
    visited = await lookups.scores(
        key=keys.visits(site_id, visitor), members=[item["path"] for item in candidates]
    )
    return [item for item, seen in zip(candidates, visited, strict=True) if seen is None][:limit]
