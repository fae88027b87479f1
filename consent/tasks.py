"""Celery tasks of the consent app (the periodic ones are scheduled in naboria.periodic_jobs)."""

from celery import shared_task

from consent.mirroring import consent_records_mirror
from consent.retention import consent_records_purge


@shared_task
def mirror_consent_records() -> int:
    return consent_records_mirror()


@shared_task
def purge_consent_records() -> int:
    return consent_records_purge()
