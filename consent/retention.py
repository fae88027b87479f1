"""The retention of consent decision records: deleted once older than the banner's
``record_retention_days`` or, without one, settings.CONSENT_RECORD_RETENTION_DAYS. Run daily by
the task consent.tasks.purge_consent_records (naboria.periodic_jobs) and on demand by
``manage.py purge_consent_records``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from consent.models import ConsentBanner, ConsentRecord

logger = logging.getLogger(__name__)


PURGE_BATCH = 5000


def _delete_in_batches(records: QuerySet[ConsentRecord]) -> int:
    """Delete in batches, so a first purge of years of records holds no long lock."""
    deleted = 0
    while True:
        ids = list(records.values_list("pk", flat=True)[:PURGE_BATCH])
        if not ids:
            return deleted
        deleted += ConsentRecord.objects.filter(pk__in=ids).delete()[0]


def consent_records_purge(*, now: datetime | None = None) -> int:
    """Delete the decision records older than their retention period: the banner's
    ``record_retention_days``, else settings.CONSENT_RECORD_RETENTION_DAYS. The number deleted.

    Banner snapshots stay (they hold no personal data, and what a banner said may still have to
    be shown for a record kept elsewhere); so do the ClickHouse mirror rows, which name no
    visitor."""
    now = now or timezone.now()
    own: dict[int, int] = {
        site_id: days
        for site_id, days in ConsentBanner.objects.filter(
            record_retention_days__isnull=False
        ).values_list("site_id", "record_retention_days")
        if days is not None
    }
    deleted = 0
    for site_id, days in own.items():
        cutoff = now - timedelta(days=days)
        deleted += _delete_in_batches(
            ConsentRecord.objects.filter(site_id=site_id, recorded_at__lt=cutoff)
        )
    cutoff = now - timedelta(days=settings.CONSENT_RECORD_RETENTION_DAYS)
    deleted += _delete_in_batches(
        ConsentRecord.objects.exclude(site_id__in=list(own)).filter(recorded_at__lt=cutoff)
    )
    if deleted:
        logger.info("purged %d consent records past their retention period", deleted)
    return deleted
