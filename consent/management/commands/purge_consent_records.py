"""``python manage.py purge_consent_records``: delete the consent decision records older than
their retention period now (Celery beat runs the same purge daily, consent.tasks)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from consent.retention import consent_records_purge


class Command(BaseCommand):
    help = (
        "Delete consent decision records older than their retention period (the banner's "
        "record_retention_days, else CONSENT_RECORD_RETENTION_DAYS)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = consent_records_purge()
        self.stdout.write(f"{deleted} consent records purged")
