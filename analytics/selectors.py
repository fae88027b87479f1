"""Reads of the analytics app's own models: a site's saved segments."""

from __future__ import annotations

from django.db.models import QuerySet

from analytics.models import Segment
from analytics.reports.query import InvalidReportQuery
from sites.models import Site


def segments_of(*, site: Site) -> QuerySet[Segment]:
    return Segment.objects.filter(site=site)


# Ids are PostgreSQL bigints: a larger number is no segment (rather than a database error).
_LARGEST_ID = 2**63 - 1


def segment_of(*, site: Site, segment_id: int) -> Segment | None:
    if not 0 < segment_id <= _LARGEST_ID:
        return None
    return segments_of(site=site).filter(pk=segment_id).first()


def segment_filters(*, site: Site, segment_id: str) -> dict[str, str]:
    """The filters of the site's segment ``segment_id`` (a report's ``segment`` parameter)."""
    segment = (
        segment_of(site=site, segment_id=int(segment_id))
        if segment_id.isascii() and segment_id.isdigit()
        else None
    )
    if segment is None:
        raise InvalidReportQuery(f"segment: no saved segment {segment_id!r} on this site")
    return dict(segment.filters)
