"""Celery tasks of the analytics app (the periodic ones are scheduled in naboria.periodic_jobs)."""

from celery import shared_task

from analytics import session_facts


@shared_task
def refresh_session_facts() -> int:
    return session_facts.refresh()
