"""Reads of recommendations: a site's most visited pages (ClickHouse, for the periodic job), the
popular list the job stored (Redis, kept in process for a few seconds: it is read by every
request), a visitor's visited paths, and the items recommended to them.

An item is a page of the site: its path, the URL it is most often visited at (without query
or fragment) and its title as pages reported it (the path when none did).

Entry points: top_pages, popular_items, visited_paths, recommended_items, forget_popular (tests).
"""

from __future__ import annotations

import time
from collections.abc import Collection
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


async def visited_paths(*, site_id: str, bid: str) -> set[str]:
    """The paths the visitor visited on the site in the last 7 days (with consent)."""
    members = await redis_client.async_client().zrange(keys.visits(site_id, bid), 0, -1)
    return {member.decode() for member in members}


async def recommended_items(*, site_id: str, leave_out: Collection[str], limit: int) -> list[Item]:
    """The site's most popular pages but those whose path is in ``leave_out``, at most
    ``limit``."""
    items = await popular_items(site_id=site_id)
    return [item for item in items if item["path"] not in leave_out][:limit]
