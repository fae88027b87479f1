"""Celery tasks of the sites app (scheduled in naboria.periodic_jobs)."""

from celery import shared_task

from sites.services import site_secrets_purge_expired


@shared_task
def purge_expired_site_secrets() -> int:
    return site_secrets_purge_expired()
