"""Celery tasks of the consent app (the periodic ones are scheduled in naboria.periodic_jobs)."""

import logging

from celery import shared_task

from consent.mirroring import consent_records_mirror
from consent.models import ConsentBanner
from consent.retention import consent_records_purge
from consent.vendor_list import VendorListInvalid, vendor_list_refresh

logger = logging.getLogger(__name__)


@shared_task
def mirror_consent_records() -> int:
    return consent_records_mirror()


@shared_task
def purge_consent_records() -> int:
    return consent_records_purge()


@shared_task
def refresh_vendor_list() -> int | None:
    """The newest IAB vendor list, for installations with a TCF banner (the others never ask the
    IAB for anything). A failed fetch keeps the stored list and is logged; the admin and system
    check consent.W001 tell when the stored one grows stale. Returns the version in use."""
    if not ConsentBanner.objects.filter(tcf_enabled=True).exists():
        return None
    try:
        stored, _ = vendor_list_refresh()
    except VendorListInvalid as error:
        logger.warning("vendor list not refreshed: %s", error)
        return None
    return stored.version
