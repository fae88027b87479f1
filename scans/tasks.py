"""Celery tasks of the scans app: the periodic job and one site's scan (docs/scans.md)."""

from __future__ import annotations

import logging

from celery import shared_task

from naboria.locks import LockBusy
from scans.models import ScanTrigger
from scans.selectors import sites_due_for_scan
from scans.services import scan_run
from sites.models import Site

logger = logging.getLogger(__name__)


@shared_task
def scan_site(site_id: int) -> int | None:
    """Scan one site; the new scan's id (None when the site is gone or already being
    scanned)."""
    site = Site.objects.filter(pk=site_id).first()
    if site is None:
        return None
    try:
        return scan_run(site=site, trigger=ScanTrigger.SCHEDULE).pk
    except LockBusy:
        logger.info("scan of %s skipped: another scan of it is running", site.public_id)
        return None


@shared_task
def scan_due_sites() -> list[int]:
    """Queue a scan of every site that is due (scans.selectors.sites_due_for_scan); their
    ids. Each scan is a task of its own, so one slow site does not hold the others."""
    site_ids = list(sites_due_for_scan().values_list("pk", flat=True))
    for site_id in site_ids:
        scan_site.delay(site_id)
    return site_ids
