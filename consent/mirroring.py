"""The ClickHouse mirror of consent decision records (``consent_events``), which the consent
reports read (analytics.reports.ads_and_consent). Run by the task consent.tasks.
mirror_consent_records: soon after each record (consent.services.consent_record_create) and
every minute (naboria.periodic_jobs) to catch up the ones whose mirroring failed.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from consent.models import ConsentRecord
from naboria import clickhouse

MIRROR_BATCH = 1000


# The columns of consent_events, in the order of the mirrored rows.
CONSENT_EVENT_COLUMNS = (
    "record_id",
    "site_id",
    "recorded_at",
    "visitor_kind",
    "granted",
    "denied",
    "banner_version",
    "language",
    "user_agent_family",
    "country",
)


def consent_records_mirror(*, now: datetime | None = None) -> int:
    """Copy records not yet in ClickHouse there, oldest first; the number copied.

    A record is marked only after the insert succeeded, so a failure leaves it for the next run
    (the periodic job retries) and nothing is lost.
    """
    mirrored = 0
    while True:
        records = list(
            ConsentRecord.objects.filter(mirrored_at__isnull=True)
            .select_related("site")
            .order_by("id")[:MIRROR_BATCH]
        )
        if not records:
            return mirrored
        clickhouse.get_client().insert(
            "consent_events",
            [
                [
                    record.pk,
                    record.site.public_id,
                    record.recorded_at,
                    record.visitor_id_kind,
                    record.granted,
                    record.denied,
                    record.banner_version,
                    record.language,
                    record.user_agent_family,
                    record.country,
                ]
                for record in records
            ],
            column_names=list(CONSENT_EVENT_COLUMNS),
        )
        ConsentRecord.objects.filter(pk__in=[record.pk for record in records]).update(
            mirrored_at=now or timezone.now()
        )
        mirrored += len(records)
