"""Celery tasks of ingestion (scheduled in naboria.periodic_jobs)."""

from celery import shared_task

from ingest.identity import salts_purge_older_than


@shared_task
def purge_old_daily_salts() -> int:
    return salts_purge_older_than(days=1)
