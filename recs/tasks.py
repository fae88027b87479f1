"""Celery tasks of recommendations (scheduled in naboria.periodic_jobs)."""

from celery import shared_task

from recs.services import popular_pages_refresh_all


@shared_task
def refresh_popular_pages() -> int:
    return popular_pages_refresh_all()
