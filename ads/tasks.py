"""Celery tasks of the ads app (the periodic ones are scheduled in naboria.periodic_jobs)."""

from celery import shared_task

from ads import services


@shared_task
def count_conversions_spend() -> int:
    """Charge CPA campaigns for their newly attributed conversions; the number charged."""
    return services.conversions_spend_count()
