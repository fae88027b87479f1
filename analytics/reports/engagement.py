"""Engagement reports: outbound links and file downloads the visitors followed, and per page
the time it was visible and how far down it was scrolled.

The tracker collects them as page events (docs/tracker.md): ``outbound`` and ``download`` with
the link's ``target``, and ``engagement`` with ``visible_ms`` and ``scroll_depth`` sent each time
a page is hidden or left (several for one pageview when the visitor comes back to the tab: each
carries the time visible since the previous one, and the deepest scroll so far). An engagement
event belongs to the visit of the activity before it, however late it comes (events.visits).
They read the visits the query's filters keep (query.visit_rows: whole visits, the same as
every other report): each visit row holds its targets with their clicks and, per page, its
engagement reports (analytics.session_facts). Links are never sampled (few visits follow one),
their visitors counted exactly; pages, like the other page reports, read a sample of visitors
over large periods unless exactness is asked for (``sampling=none``), counts scaled back.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from analytics.reports.query import ReportQuery, rows, visit_rows


def followed_links(
    query: ReportQuery, *, kind: str, limit: int = 10, offset: int = 0
) -> dict[str, Any]:
    """Targets of followed outbound links (``kind="outbound"``) or file downloads
    (``kind="download"``): the visitors who followed each and how many times, most visitors
    first."""
    if kind not in {"outbound", "download"}:
        raise ValueError(f"no such link kind: {kind}")
    visit_source = visit_rows(replace(query, exact=True))
    # Few visits followed a link: the test on the size of their targets, pushed down before the
    # filters (ClickHouse reads the smallest columns first), spares reading the others.
    sql = f"""
        SELECT target, uniqExact(visitor_hash) AS visitors, sum(times) AS clicks
        FROM (SELECT * FROM ({visit_source.sql}) WHERE notEmpty({kind}_targets))
        ARRAY JOIN {kind}_targets AS target, {kind}_clicks AS times
        GROUP BY target ORDER BY visitors DESC, clicks DESC, target
        LIMIT {{limit:UInt32}} OFFSET {{offset:UInt32}}
    """  # noqa: S608 (kind checked above; values are parameters)
    found = rows(sql, {**visit_source.parameters, "limit": limit, "offset": offset})
    return {
        "results": [
            {"target": target, "visitors": int(visitors), "clicks": int(clicks)}
            for target, visitors, clicks in found
        ]
    }


def page_engagement(query: ReportQuery, *, limit: int = 10, offset: int = 0) -> dict[str, Any]:
    """Per page, most pageviews first: its pageviews and visitors, the time on page (seconds:
    all the visible time reported for the page divided by its pageviews, so a pageview that
    never reported, e.g. with engagement switched off, counts as no time) and the scroll depth
    (%: the average of its engagement reports; ``None`` without any). Both are ratios over
    whole visitors, so a sample leaves them unbiased. Engagement a visit reported for a page it
    did not view (none of the tracker's) has no pageview to belong to and is left out."""
    visit_source = visit_rows(query)
    # One pass: each visit's engagement arrays line up with its pages (analytics.session_facts).
    # (Aliases differ from the visit rows' columns, which ClickHouse prefers.)
    sql = f"""
        SELECT page AS pathname, sum(times) AS views, {visit_source.distinct("visitor_hash")},
               sum(milliseconds), sum(reports), sum(depth)
        FROM ({visit_source.sql})
        ARRAY JOIN pages AS page, page_views AS times, page_engaged_ms AS milliseconds,
                   page_engagement_reports AS reports, page_scroll_depths AS depth
        GROUP BY pathname
        ORDER BY views DESC, pathname
        LIMIT {{limit:UInt32}} OFFSET {{offset:UInt32}}
    """  # noqa: S608 (values are parameters)
    found = rows(sql, {**visit_source.parameters, "limit": limit, "offset": offset})
    return {
        "sample_rate": visit_source.sample_rate,
        "results": [
            {
                "page": page,
                "pageviews": visit_source.scaled(pageviews),
                "visitors": visit_source.scaled(visitors),
                "time_on_page_seconds": round(int(visible_ms) / 1000 / int(pageviews), 1),
                "engagement_reports": visit_source.scaled(reports),
                "scroll_depth": round(int(scrolled) / int(reports), 1) if reports else None,
            }
            for page, pageviews, visitors, visible_ms, reports, scrolled in found
        ],
    }
