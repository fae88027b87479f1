"""Reads of the scans app: which pages a scan visits, which sites the periodic job scans, and
the scans a user may see."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Max, Q, QuerySet
from django.utils import timezone

from analytics.reports import traffic
from analytics.reports.query import ReportQuery
from scans.models import ScanConfig
from scans.targets import home_urls, url_refusal
from sites.models import Site

logger = logging.getLogger(__name__)

TOP_PAGES_DAYS = 30


def scan_config_of(*, site: Site) -> ScanConfig | None:
    return ScanConfig.objects.filter(site=site).first()


def top_page_paths(*, site: Site, limit: int) -> list[str]:
    """The site's most-viewed paths over the last TOP_PAGES_DAYS days (most visitors first),
    from the pages report."""
    today = timezone.now().date()
    query = ReportQuery.parse(
        site_id=site.public_id,
        timezone=site.timezone,
        params={"from": (today - timedelta(days=TOP_PAGES_DAYS - 1)).isoformat()},
    )
    answer = traffic.breakdown(query, dimension="pages", limit=limit)
    return [str(row["value"]) for row in answer["results"] if str(row["value"]).startswith("/")]


def scan_page_urls(
    *, site: Site, only_urls: list[str] | None = None, limit: int | None = None
) -> tuple[list[str], list[str]]:
    """(URLs to scan, notes): ``only_urls`` when given, else the home page of each allowed
    domain, the configured URLs, then the most-viewed paths on the site's first allowed domain;
    only URLs on the allowed domains (the others are noted), each once, at most ``limit``
    (SCAN_MAX_PAGES)."""
    limit = limit or settings.SCAN_MAX_PAGES
    config = scan_config_of(site=site)
    domains = list(site.allowed_domains)
    notes = []
    if only_urls:
        candidates = list(only_urls)
    else:
        candidates = home_urls(allowed_domains=domains, scheme=settings.SCAN_HOME_SCHEME)
        candidates += list(config.urls) if config else []
    if not only_urls and (config is None or config.include_top_pages):
        hosts = [domain for domain in domains if not domain.startswith("*.")]
        try:
            paths = top_page_paths(site=site, limit=limit) if hosts else []
        except Exception as error:  # ClickHouse away: scan the other pages all the same
            logger.warning("scan of %s: top pages unavailable: %s", site.public_id, error)
            notes.append(f"top pages unavailable: {error}")
            paths = []
        candidates += [f"{settings.SCAN_HOME_SCHEME}://{hosts[0]}{path}" for path in paths]
    urls: list[str] = []
    for url in candidates:
        refusal = url_refusal(url=url, allowed_domains=domains)
        if refusal:
            notes.append(f"not visited: {refusal}")
        elif url not in urls:
            urls.append(url)
    return urls[:limit], notes


def sites_due_for_scan(*, now: Any = None) -> QuerySet[Site]:
    """Sites whose scan configuration is scheduled and whose last scan started more than
    SCAN_INTERVAL_HOURS ago, or never (a scan still running started less than that ago; two
    at once are kept apart by scan_run's lock)."""
    due_before = (now or timezone.now()) - timedelta(hours=settings.SCAN_INTERVAL_HOURS)
    return (
        Site.objects.filter(scan_config__scheduled=True)
        .annotate(last_scan=Max("scans__started_at"))
        .filter(Q(last_scan__isnull=True) | Q(last_scan__lt=due_before))
        .order_by("pk")
    )
