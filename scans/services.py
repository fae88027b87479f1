"""Writes of the scans app: run a scan of a site (visit its pages in headless Chromium, store
what they set and load before and after consent) and keep the last SCAN_KEEP scans per site.

Entry point: scan_run(*, site, trigger, only_urls=None).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from naboria.locks import exclusive
from scans.browser import PageVisit, ScanOptions, visit_pages
from scans.models import Scan, ScanFinding, ScanPage, ScanStatus
from scans.selectors import scan_page_urls
from sites.models import Site

logger = logging.getLogger(__name__)


def scan_run(*, site: Site, trigger: str, only_urls: list[str] | None = None) -> Scan:
    """Scan the site's pages (scans.selectors.scan_page_urls: ``only_urls`` when given) and
    store the results; one scan
    of a site at a time (naboria.locks.LockBusy otherwise). A browser that cannot start makes a
    failed scan, with the reason in ``error``."""
    urls, notes = scan_page_urls(site=site, only_urls=only_urls)
    # Long enough for every page's budget; a dead holder frees the lock after it.
    hold = 60 + len(urls) * settings.SCAN_PAGE_TIMEOUT_SECONDS * 2
    with exclusive(f"scan:{site.pk}", hold=hold, wait=0):
        scan = Scan.objects.create(site=site, trigger=trigger, error="\n".join(notes))
        options = ScanOptions(
            public_id=site.public_id,
            allowed_domains=tuple(site.allowed_domains),
            page_timeout_seconds=float(settings.SCAN_PAGE_TIMEOUT_SECONDS),
            allow_private_networks=settings.SCAN_ALLOW_PRIVATE_NETWORKS,
            chromium_path=settings.SCAN_CHROMIUM_PATH,
        )
        versions: list[str] = []
        try:
            visits = visit_pages(urls, options, on_version=versions.append)
        except Exception as error:  # no browser, or it crashed: a failed scan says why
            logger.exception("scan of %s failed", site.public_id)
            scan.status = ScanStatus.FAILED
            scan.error = "\n".join([*notes, f"the browser failed: {error}"])
            scan.browser_version = versions[0] if versions else ""
            scan.finished_at = timezone.now()
            scan.save()
            return scan
        _store(scan=scan, visits=visits, browser_version=versions[0] if versions else "")
    scans_prune(site=site, keep=settings.SCAN_KEEP)
    return scan


@transaction.atomic
def _store(*, scan: Scan, visits: list[PageVisit], browser_version: str) -> None:
    flagged = 0
    for visit in visits:
        page = ScanPage.objects.create(
            scan=scan,
            url=visit.url,
            final_url=visit.final_url,
            http_status=visit.http_status,
            banner_found=visit.banner_found,
            error=visit.error,
            blocked_hosts=sorted(visit.blocked_hosts),
        )
        ScanFinding.objects.bulk_create(
            ScanFinding(
                page=page,
                kind=seen.kind,
                phase=seen.phase,
                name=seen.name[:500],
                domain=seen.domain[:500],
                party=seen.party,
                expires_at=seen.expires_at,
                resource_types=", ".join(sorted(seen.resource_types))[:200],
                requests=seen.requests,
            )
            for seen in visit.findings
        )
        flagged += sum(seen.phase == "before" for seen in visit.findings)
    scan.status = ScanStatus.DONE
    scan.finished_at = timezone.now()
    scan.browser_version = browser_version
    scan.pages_scanned = sum(not visit.error for visit in visits)
    scan.flagged = flagged
    scan.save()


def scans_prune(*, site: Site, keep: int) -> int:
    """Delete the site's scans beyond the ``keep`` most recent; how many were deleted."""
    kept = Scan.objects.filter(site=site).order_by("-started_at", "-id")[:keep]
    deleted, _ = (
        Scan.objects.filter(site=site).exclude(pk__in=list(kept.values_list("pk", flat=True)))
    ).delete()
    return int(deleted)
