"""Writes of recommendations: a visitor's signals (visited paths; ad impressions and clicks) and
a site's popular pages.

Signals are personal data: the callers store them only for a browser id whose token verified
and whose consent the server accepted (analytics for visits, ads for ad events). Each key
expires (visits after 7 days, ad signals after 30, counted from the latest signal) and is
trimmed to its newest entries, so no visitor's keys grow without bound. Writing a signal twice
changes nothing: a visit is its path (with the latest time), an ad signal its impression.

Entry points: visit_record, ad_signal_record, visitor_signals_forget (a decision that takes
consent back: recs.receivers), popular_pages_refresh, popular_pages_refresh_all.
"""

from __future__ import annotations

import logging
from typing import Literal

import msgspec

from naboria import redis_client
from recs import keys
from recs.selectors import POPULAR_SIZE, Item, top_pages
from sites.models import Site

logger = logging.getLogger(__name__)
_json = msgspec.json.Encoder()


async def visit_record(*, site_id: str, bid: str, path: str, title: str, at_ms: int) -> None:
    """The visitor visited ``path`` (titled ``title``, which becomes the page's title when not
    empty)."""
    visits = keys.visits(site_id, bid)
    pipe = redis_client.async_client().pipeline(transaction=False)
    pipe.zadd(visits, {path: at_ms})
    pipe.zremrangebyrank(visits, 0, -keys.MAX_VISITS - 1)  # keep the newest
    pipe.expire(visits, keys.VISITS_TTL_SECONDS)
    if title:
        pipe.hset(keys.titles(site_id), path, title)
        pipe.expire(keys.titles(site_id), keys.TITLES_TTL_SECONDS)
    await pipe.execute()


async def ad_signal_record(
    *,
    site_id: str,
    bid: str,
    kind: Literal["impression", "click"],
    campaign: int,
    ad: int,
    impression: str,
    at_ms: int,
) -> None:
    """The visitor was shown (or clicked) ``ad`` of ``campaign`` in ``impression``; a retried
    event keeps the time first recorded."""
    signals = keys.ad_signals(site_id, bid, kind)
    pipe = redis_client.async_client().pipeline(transaction=False)
    pipe.zadd(signals, {f"{campaign}:{ad}:{impression}": at_ms}, nx=True)
    pipe.zremrangebyrank(signals, 0, -keys.MAX_AD_SIGNALS - 1)
    pipe.expire(signals, keys.AD_SIGNALS_TTL_SECONDS)
    await pipe.execute()


def visitor_signals_forget(*, site_id: str, bid: str, visits: bool, ad_signals: bool) -> None:
    """Delete the visitor's visited paths (``visits``) and ad signals (``ad_signals``)."""
    doomed = [keys.visits(site_id, bid)] if visits else []
    if ad_signals:
        doomed += [keys.ad_signals(site_id, bid, kind) for kind in ("impression", "click")]
    if doomed:
        redis_client.sync_client().delete(*doomed)


def popular_pages_refresh(*, site_id: str) -> int:
    """Store the site's most visited pages (ClickHouse) with their titles as its popular list;
    the number of pages. The titles of other pages go once there are more than MAX_TITLES."""
    client = redis_client.sync_client()
    pages = top_pages(site_id=site_id, limit=POPULAR_SIZE)
    paths = [str(path) for path, _, _ in pages]
    titles = client.hmget(keys.titles(site_id), paths) if paths else []
    items: list[Item] = [
        {"path": path, "url": str(url), "title": title.decode() if title else path}
        for (path, url, _), title in zip(pages, titles, strict=True)
    ]
    client.set(keys.popular(site_id), _json.encode(items), ex=keys.POPULAR_TTL_SECONDS)
    if client.hlen(keys.titles(site_id)) > keys.MAX_TITLES:
        stale = set(client.hkeys(keys.titles(site_id))) - {path.encode() for path in paths}
        client.hdel(keys.titles(site_id), *stale)
    return len(items)


def popular_pages_refresh_all() -> int:
    """Refresh the popular list of every site with recommendations on; the number of sites
    refreshed (a site whose refresh fails keeps its previous list and is logged)."""
    refreshed = 0
    site_ids = Site.objects.filter(recommendations_enabled=True).values_list("public_id", flat=True)
    for site_id in site_ids:
        try:
            popular_pages_refresh(site_id=site_id)
        except Exception:
            logger.exception("popular pages of site %s not refreshed", site_id)
        else:
            refreshed += 1
    return refreshed
