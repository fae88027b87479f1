"""Reads of the analytics app's own models: a site's saved segments."""

from __future__ import annotations

from django.db.models import QuerySet

from analytics.models import Segment
from analytics.reports.query import InvalidReportQuery
from sites.models import Site


def segments_of(*, site: Site) -> QuerySet[Segment]:
    return Segment.objects.filter(site=site)


def segment_filters(*, site: Site, segment_id: str) -> dict[str, str]:
    """The filters of the site's segment ``segment_id`` (a report's ``segment`` parameter)."""
    segment = (
        segments_of(site=site).filter(pk=int(segment_id)).first() if segment_id.isdigit() else None
    )
    if segment is None:
        raise InvalidReportQuery(f"segment: no saved segment {segment_id!r} on this site")
    return dict(segment.filters)
