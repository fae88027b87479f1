"""Writes of the analytics app's own models: saving and deleting a site's segments."""

from __future__ import annotations

from typing import Any

from analytics.models import Segment
from analytics.reports.query import FILTER_NAMES, InvalidReportQuery, filters_from
from sites.models import Site

MAX_SEGMENTS_PER_SITE = 100


def segment_create(*, site: Site, name: str, filters: Any) -> Segment:
    """Saves ``filters`` (filter name -> value in the report parameters' syntax) as a named
    segment of ``site``; InvalidReportQuery says what is wrong with them."""
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > 100:
        raise InvalidReportQuery("name: from 1 to 100 characters")
    if (
        not isinstance(filters, dict)
        or not filters
        or not all(isinstance(value, str) for value in filters.values())
    ):
        raise InvalidReportQuery("filters: an object of filter name -> value (text), not empty")
    unknown = sorted(set(filters) - set(FILTER_NAMES))
    if unknown:
        raise InvalidReportQuery(f"unknown filter {unknown[0]!r}: one of {', '.join(FILTER_NAMES)}")
    filters_from(filters)  # the syntax of each value
    if Segment.objects.filter(site=site, name=name).exists():
        raise InvalidReportQuery(f"name: the site already has a segment {name!r}")
    if Segment.objects.filter(site=site).count() >= MAX_SEGMENTS_PER_SITE:
        raise InvalidReportQuery(f"a site keeps at most {MAX_SEGMENTS_PER_SITE} segments")
    return Segment.objects.create(site=site, name=name, filters=filters)


def segment_delete(*, segment: Segment) -> None:
    segment.delete()
