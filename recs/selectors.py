"""Reads of recommendations: a site's most visited pages (ClickHouse, for the periodic job), the
popular list the job stored (Redis, kept in process for a few seconds: it is read by every
request), and the items recommended to a visitor (leaving out the pages they visited).

An item is a page of the site: its path, the URL it is most often visited at (without query
or fragment) and its title as pages reported it (the path when none did).

Entry points: top_pages, popular_items, recommended_items, forget_popular (tests).
"""

from __future__ import annotations

import time
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


async def recommended_items(
    *, site_id: str, current_path: str, visitor: str | None, limit: int
) -> list[Item]:
    """The site's most popular pages but the one at ``current_path`` and, for ``visitor`` (a
    browser id the caller verified, with consent), those they visited in the last 7 days; at
    most ``limit``. The visits are looked up for the candidates only, a few at a time, most
    popular first: one Redis round trip with a short answer unless the visitor saw most of
    them, whatever their number of visits."""
    candidates = [
        item for item in await popular_items(site_id=site_id) if item["path"] != current_path
    ]
    if visitor is None:
        return candidates[:limit]
    client = redis_client.async_client()
    found: list[Item] = []
    step = max(2 * limit, 10)
    for start in range(0, len(candidates), step):
        chunk = candidates[start : start + step]
        visited = await client.zmscore(
            keys.visits(site_id, visitor), [item["path"] for item in chunk]
        )
        found += [item for item, seen in zip(chunk, visited, strict=True) if seen is None]
        if len(found) >= limit:
            break
    return found[:limit]
