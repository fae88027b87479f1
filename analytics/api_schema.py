"""What the reports REST API (analytics.api) promises in its OpenAPI schema: the response body
of each report, the error bodies, and the parameters with their types, enums and bounds.

The serializers here are never used to serialize: they only describe, for drf-spectacular, the
dictionaries the report functions of analytics.reports return (tests validate real answers
against the schema, tests/integration/test_api_schema_fuzz.py). A field a report adds or
changes must be added or changed here.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema_field
from rest_framework import serializers

from ads.models import PricingModel
from analytics.reports import ads_and_consent, app_releases, conversions, traffic
from analytics.reports.query import (
    EVENT_FILTERS,
    FIRST_DAY,
    LAST_DAY,
    MAX_FILTER_LENGTH,
    MAX_RANGE_DAYS,
    VISIT_FILTERS,
)
from sites.api import (
    BEARER_CHALLENGE,
    NOT_ACCEPTABLE,
    NOT_FOUND_SITE,
    UNAUTHENTICATED,
)

MAX_PAGE = 100_000
MAX_PAGE_SIZE = 1000
INTERVALS = ("hour", "day", "week", "month")
_STEP = r"(/[^,]*|event:[^,]+)"
FUNNEL_STEPS_PATTERN = rf"^{_STEP}(,{_STEP}){{1,{conversions.MAX_FUNNEL_STEPS - 1}}}$"


def query_parameter(
    name: str,
    description: str,
    kind: Any = OpenApiTypes.STR,
    *,
    enum: tuple[str, ...] | None = None,
    default: Any = None,
    low: int | None = None,
    high: int | None = None,
    pattern: str | None = None,
    required: bool = False,
) -> OpenApiParameter:
    """A query parameter; ``low`` and ``high`` bound a whole number (inclusive)."""
    bounds = {
        key: value
        for key, value in (("minimum", low), ("maximum", high), ("pattern", pattern))
        if value is not None
    }
    if bounds:
        kind = {"type": "integer" if kind is int else "string", **bounds}
    return OpenApiParameter(
        name,
        kind,
        OpenApiParameter.QUERY,
        description=description,
        enum=list(enum) if enum else None,
        default=default,
        required=required,
    )


def page_parameters(what: str = "results per page") -> tuple[OpenApiParameter, ...]:
    return (
        query_parameter("page", "1-based page of results", int, default=1, low=1, high=MAX_PAGE),
        page_size_parameter(what),
    )


def page_size_parameter(what: str) -> OpenApiParameter:
    return query_parameter(
        "page_size", f"{what} (default 10)", int, default=10, low=1, high=MAX_PAGE_SIZE
    )


def interval_parameter() -> OpenApiParameter:
    return query_parameter(
        "interval", "length of a point, site time", enum=INTERVALS, default="day"
    )


FILTER_SYNTAX = (
    "`value`, `a|b` any of them, `!value` none of them, `*` a wildcard, `~text` contains; "
    "docs/analytics.md"
)
COMMON_PARAMETERS = (
    query_parameter(
        "from",
        f"first day, in the site's timezone (default: 29 days ago); days from {FIRST_DAY} to "
        f"{LAST_DAY}, at most {MAX_RANGE_DAYS} in a range",
        OpenApiTypes.DATE,
    ),
    query_parameter("to", "last day, inclusive (default: today)", OpenApiTypes.DATE),
    query_parameter(
        "compare",
        "`previous` (the same number of days just before) or `YYYY-MM-DD..YYYY-MM-DD`",
        pattern=r"^(previous|\d{4}-\d{2}-\d{2}\.\.\d{4}-\d{2}-\d{2})$",
    ),
    query_parameter(
        "bots", "whether bot traffic counts", enum=("exclude", "include"), default="exclude"
    ),
    query_parameter(
        "sampling",
        "`auto`: periods of more than 250,000 visits read a sample of visitors (see "
        "`sample_rate`); `none`: exact, slower",
        enum=("auto", "none"),
        default="auto",
    ),
    query_parameter(
        "property",
        f"only visits with a custom event property, `key:value` (value: {FILTER_SYNTAX})",
        pattern=r"^[^:]+:",
    ),
    query_parameter("segment", "id of a saved segment of the site: its filters apply", int),
    query_parameter(
        "format",
        "`csv` exports the report's rows (`text/csv`); errors are JSON either way",
        enum=("json", "csv"),
        default="json",
    ),
    *(
        query_parameter(
            name,
            f"filter: visits whose {column} matches ({FILTER_SYNTAX}; "
            f"at most {MAX_FILTER_LENGTH} characters)",
        )
        for name, column in VISIT_FILTERS.items()
    ),
    *(
        query_parameter(
            name,
            f"filter: visits that contain {event} ({FILTER_SYNTAX}; "
            f"at most {MAX_FILTER_LENGTH} characters)",
        )
        for name, event in EVENT_FILTERS.items()
        if name != "property"
    ),
)


# Response bodies. Numbers are scaled back when a report read a sample (sample_rate < 1).
class OverviewNumbersSerializer(serializers.Serializer[Any]):
    visitors = serializers.IntegerField(min_value=0)
    visits = serializers.IntegerField(min_value=0)
    pageviews = serializers.IntegerField(min_value=0)
    views_per_visit = serializers.FloatField(min_value=0)
    bounce_rate = serializers.FloatField(min_value=0, max_value=100, help_text="percent")
    visit_duration_seconds = serializers.FloatField(min_value=0, help_text="average")


class OverviewChangeSerializer(serializers.Serializer[Any]):
    """Change from the comparison period in percent; null when it had none."""

    visitors = serializers.FloatField(allow_null=True)
    visits = serializers.FloatField(allow_null=True)
    pageviews = serializers.FloatField(allow_null=True)
    views_per_visit = serializers.FloatField(allow_null=True)
    bounce_rate = serializers.FloatField(allow_null=True)
    visit_duration_seconds = serializers.FloatField(allow_null=True)


def _sample_rate() -> serializers.FloatField:
    return serializers.FloatField(
        min_value=0, max_value=1, help_text="share of visitors read (1: all)"
    )


class OverviewSerializer(serializers.Serializer[Any]):
    period = OverviewNumbersSerializer()
    sample_rate = _sample_rate()
    compare = OverviewNumbersSerializer(required=False, help_text="with `compare` only")
    change = OverviewChangeSerializer(required=False, help_text="with `compare` only")


class TimeseriesPointSerializer(serializers.Serializer[Any]):
    date = serializers.CharField(help_text="YYYY-MM-DD, or YYYY-MM-DD HH:00 by hour")
    visitors = serializers.IntegerField(min_value=0)
    visits = serializers.IntegerField(min_value=0)
    pageviews = serializers.IntegerField(min_value=0)


def _visit_origin() -> serializers.ChoiceField:
    return serializers.ChoiceField(choices=["facts", "raw"], help_text="where the visits come from")


class TimeseriesSerializer(serializers.Serializer[Any]):
    interval = serializers.ChoiceField(choices=INTERVALS)
    source = _visit_origin()  # type: ignore[assignment]  # a field named like Field.source
    sample_rate = _sample_rate()
    points = TimeseriesPointSerializer(many=True)


class BreakdownRowSerializer(serializers.Serializer[Any]):
    value = serializers.CharField()
    visitors = serializers.IntegerField(min_value=0)
    visits = serializers.IntegerField(min_value=0)
    pageviews = serializers.IntegerField(min_value=0)
    country = serializers.CharField(
        required=False, help_text="regions and cities: the place's country (ISO 3166-1 alpha-2)"
    )
    region = serializers.CharField(required=False, help_text="cities: the city's region")


class BreakdownSerializer(serializers.Serializer[Any]):
    dimension = serializers.ChoiceField(choices=sorted(traffic.BREAKDOWNS))
    source = _visit_origin()  # type: ignore[assignment]  # a field named like Field.source
    sample_rate = _sample_rate()
    results = BreakdownRowSerializer(many=True)


class PageLinksSerializer(serializers.Serializer[Any]):
    """The links of a paginated report's neighbouring pages."""

    next = serializers.URLField(allow_null=True, help_text="the next page (null on the last)")
    previous = serializers.URLField(allow_null=True, help_text="null on the first page")


class PagedBreakdownSerializer(BreakdownSerializer, PageLinksSerializer):
    """A breakdown with its page links."""


class DashboardBreakdownsSerializer(serializers.Serializer[Any]):
    pages = BreakdownSerializer()
    sources = BreakdownSerializer()
    countries = BreakdownSerializer()
    devices = BreakdownSerializer()
    browsers = BreakdownSerializer()


class DashboardSerializer(serializers.Serializer[Any]):
    overview = OverviewSerializer()
    timeseries = TimeseriesSerializer()
    breakdowns = DashboardBreakdownsSerializer()


class EntryExitRowSerializer(serializers.Serializer[Any]):
    page = serializers.CharField()
    visits = serializers.IntegerField(min_value=0)
    visitors = serializers.IntegerField(min_value=0)


class EntryExitSerializer(serializers.Serializer[Any]):
    which = serializers.ChoiceField(choices=["entry", "exit"])
    sample_rate = _sample_rate()
    results = EntryExitRowSerializer(many=True)


class GoalRowSerializer(serializers.Serializer[Any]):
    goal = serializers.CharField(help_text="the custom event's name")
    visitors = serializers.IntegerField(min_value=0)
    events = serializers.IntegerField(min_value=0)
    conversion_rate = serializers.FloatField(min_value=0, help_text="percent of visitors")


class GoalsSerializer(serializers.Serializer[Any]):
    sample_rate = _sample_rate()
    results = GoalRowSerializer(many=True)


class PropertyRowSerializer(serializers.Serializer[Any]):
    value = serializers.CharField()
    visitors = serializers.IntegerField(min_value=0)
    events = serializers.IntegerField(min_value=0)


class PropertiesSerializer(serializers.Serializer[Any]):
    event = serializers.CharField()
    property = serializers.CharField()
    sample_rate = _sample_rate()
    results = PropertyRowSerializer(many=True)


class FunnelStepSerializer(serializers.Serializer[Any]):
    step = serializers.CharField()
    visits = serializers.IntegerField(min_value=0)
    conversion_from_start = serializers.FloatField(min_value=0, max_value=100)
    drop_off = serializers.IntegerField(min_value=0, help_text="visits lost since the step before")


class FunnelSerializer(serializers.Serializer[Any]):
    sample_rate = _sample_rate()
    steps = FunnelStepSerializer(many=True)


class CohortSerializer(serializers.Serializer[Any]):
    week = serializers.DateField(help_text="Monday of the first visits")
    visitors = serializers.IntegerField(min_value=0)
    returning = serializers.ListField(
        child=serializers.IntegerField(min_value=0), help_text="visitors per following week"
    )
    retention = serializers.ListField(
        child=serializers.FloatField(min_value=0, max_value=100), help_text="percent"
    )


class RetentionSerializer(serializers.Serializer[Any]):
    weeks = serializers.IntegerField(min_value=1)
    sample_rate = _sample_rate()
    cohorts = CohortSerializer(many=True)


class FollowedLinkSerializer(serializers.Serializer[Any]):
    target = serializers.CharField(help_text="the link's URL")
    visitors = serializers.IntegerField(min_value=0)
    clicks = serializers.IntegerField(min_value=0)


class FollowedLinksSerializer(PageLinksSerializer):
    results = FollowedLinkSerializer(many=True)


class PageEngagementSerializer(serializers.Serializer[Any]):
    page = serializers.CharField()
    pageviews = serializers.IntegerField(min_value=0)
    visitors = serializers.IntegerField(min_value=0)
    time_on_page_seconds = serializers.FloatField(
        min_value=0, help_text="visible seconds reported for the page per pageview"
    )
    engagement_reports = serializers.IntegerField(min_value=0)
    scroll_depth = serializers.FloatField(
        min_value=0, max_value=100, allow_null=True, help_text="average %; null without reports"
    )


class EngagementSerializer(PageLinksSerializer):
    sample_rate = _sample_rate()
    results = PageEngagementSerializer(many=True)


class AdRowSerializer(serializers.Serializer[Any]):
    campaign = serializers.CharField(required=False, help_text="with by=campaign")
    ad = serializers.CharField(required=False, help_text="with by=ad")
    placement = serializers.CharField(required=False, help_text="with by=placement")
    day = serializers.DateField(required=False, help_text="with by=day")
    impressions = serializers.IntegerField(min_value=0)
    viewable_impressions = serializers.IntegerField(min_value=0)
    viewable_rate = serializers.FloatField(min_value=0, help_text="percent")
    clicks = serializers.IntegerField(min_value=0)
    ctr = serializers.FloatField(min_value=0, help_text="percent")
    video_starts = serializers.IntegerField(min_value=0)
    video_first_quartiles = serializers.IntegerField(min_value=0)
    video_midpoints = serializers.IntegerField(min_value=0)
    video_third_quartiles = serializers.IntegerField(min_value=0)
    video_completes = serializers.IntegerField(min_value=0)
    video_completion_rate = serializers.FloatField(min_value=0, help_text="percent of starts")


class AdsSerializer(serializers.Serializer[Any]):
    by = serializers.ChoiceField(choices=list(ads_and_consent.AD_GROUPINGS))
    results = AdRowSerializer(many=True)


class RevenueMetricsSerializer(serializers.Serializer[Any]):
    impressions = serializers.IntegerField(min_value=0)
    clicks = serializers.IntegerField(min_value=0)
    conversions = serializers.IntegerField(min_value=0)
    post_click_conversions = serializers.IntegerField(min_value=0)
    post_view_conversions = serializers.IntegerField(min_value=0)
    revenue = serializers.FloatField(min_value=0, help_text="in units of the currency")
    revenue_micros = serializers.IntegerField(min_value=0, help_text="exact, in micro-units")
    ecpm = serializers.FloatField(min_value=0)


class AdRevenueAdSerializer(RevenueMetricsSerializer):
    ad = serializers.IntegerField()
    name = serializers.CharField(allow_blank=True)


class AdRevenueCampaignSerializer(RevenueMetricsSerializer):
    campaign = serializers.IntegerField()
    name = serializers.CharField(allow_blank=True, help_text="empty for a deleted campaign")
    pricing = serializers.ChoiceField(
        choices=["", *PricingModel.values], help_text="empty for a deleted campaign"
    )
    currency = serializers.CharField(allow_blank=True, help_text="ISO 4217")
    rate = serializers.CharField(help_text="decimal, as text (0 for a deleted campaign)")
    flat_fee = serializers.CharField(help_text="decimal, as text")
    ads = AdRevenueAdSerializer(many=True)


class AdRevenueTotalSerializer(RevenueMetricsSerializer):
    currency = serializers.CharField()


class AdRevenueSerializer(serializers.Serializer[Any]):
    results = AdRevenueCampaignSerializer(many=True)
    totals = AdRevenueTotalSerializer(many=True, help_text="per currency")


class ConsentRowSerializer(serializers.Serializer[Any]):
    purpose = serializers.CharField()
    decisions = serializers.IntegerField(min_value=0)
    granted = serializers.IntegerField(min_value=0)
    rate = serializers.FloatField(min_value=0, max_value=100, help_text="percent granted")


class ConsentSerializer(serializers.Serializer[Any]):
    results = ConsentRowSerializer(many=True)


class RealtimePageSerializer(serializers.Serializer[Any]):
    page = serializers.CharField()
    visitors = serializers.IntegerField(min_value=0)


class RealtimeSerializer(serializers.Serializer[Any]):
    minutes = serializers.IntegerField(min_value=1)
    visitors = serializers.IntegerField(min_value=0)
    pages = RealtimePageSerializer(many=True, help_text="the 20 with most visitors")


# App release reports (analytics.reports.app_releases): numbers are exact, never sampled.
APP_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"


def app_parameter() -> OpenApiParameter:
    return query_parameter(
        "app",
        "only this app's events (its app id, the batch's `app`); default: every app of the site",
        pattern=APP_PATTERN,
    )


def _app() -> serializers.CharField:
    return serializers.CharField(allow_blank=True, help_text="the `app` asked for ('' for all)")


def _percent_or_null(what: str) -> serializers.FloatField:
    return serializers.FloatField(
        min_value=0, max_value=100, allow_null=True, help_text=f"percent {what}; null without any"
    )


class AdoptionPointSerializer(serializers.Serializer[Any]):
    date = serializers.CharField(help_text="YYYY-MM-DD HH:00 by hour, YYYY-MM-DD by day")
    installs = serializers.IntegerField(min_value=0)
    failures = serializers.IntegerField(min_value=0)
    success_rate = _percent_or_null("of installs and failures that were installs")


class AdoptionSerializer(serializers.Serializer[Any]):
    app = _app()
    interval = serializers.ChoiceField(choices=app_releases.INTERVALS)
    updates_started = serializers.IntegerField(min_value=0)
    installs = serializers.IntegerField(min_value=0)
    failures = serializers.IntegerField(min_value=0)
    cancellations = serializers.IntegerField(min_value=0)
    rollbacks = serializers.IntegerField(min_value=0, help_text="rollbacks completed")
    devices_updated = serializers.IntegerField(min_value=0, help_text="devices with an install")
    success_rate = _percent_or_null("of installs and failures that were installs")
    points = AdoptionPointSerializer(many=True)


class VersionRowSerializer(serializers.Serializer[Any]):
    version = serializers.CharField()
    devices = serializers.IntegerField(min_value=0)
    percentage = _percent_or_null("of the devices")


class VersionsSerializer(serializers.Serializer[Any]):
    app = _app()
    total_devices = serializers.IntegerField(min_value=0)
    results = VersionRowSerializer(many=True)


class ActiveDevicesPointSerializer(serializers.Serializer[Any]):
    date = serializers.DateField()
    devices = serializers.IntegerField(min_value=0)


class ActiveDevicesSerializer(serializers.Serializer[Any]):
    app = _app()
    devices = serializers.IntegerField(min_value=0, help_text="over the whole period")
    points = ActiveDevicesPointSerializer(many=True)


class FailureRowSerializer(serializers.Serializer[Any]):
    value = serializers.CharField()
    failures = serializers.IntegerField(min_value=0)
    devices = serializers.IntegerField(min_value=0)


class VersionFailureRowSerializer(FailureRowSerializer):
    failure_rate = _percent_or_null("of installs and failures that were failures")


class FailuresSerializer(serializers.Serializer[Any]):
    app = _app()
    failures = serializers.IntegerField(min_value=0)
    devices = serializers.IntegerField(min_value=0)
    error_code = FailureRowSerializer(many=True)
    failure_stage = FailureRowSerializer(many=True)
    target_version = VersionFailureRowSerializer(many=True)
    device_model = FailureRowSerializer(many=True)


class PercentilesSerializer(serializers.Serializer[Any]):
    samples = serializers.IntegerField(min_value=0, help_text="events that measured it")
    p50 = serializers.FloatField(min_value=0, allow_null=True)
    p90 = serializers.FloatField(min_value=0, allow_null=True)
    p99 = serializers.FloatField(min_value=0, allow_null=True)


class PerformanceMeasuresSerializer(serializers.Serializer[Any]):
    download_speed_mbps = PercentilesSerializer()
    download_duration_ms = PercentilesSerializer()
    install_duration_ms = PercentilesSerializer()


class VersionPerformanceSerializer(PerformanceMeasuresSerializer):
    version = serializers.CharField(help_text="target version")


class PerformanceSerializer(PerformanceMeasuresSerializer):
    app = _app()
    versions = VersionPerformanceSerializer(many=True)


# The error body of a report's 400 (DRF's 401 and 404 bodies are sites.api's).
class ReportErrorSerializer(serializers.Serializer[Any]):
    error = serializers.CharField(help_text="which parameter is wrong and why")


SITE_PARAMETER = OpenApiParameter(
    "public_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="the site's public id"
)
# Response headers, listed with an operation's parameters.
RESPONSE_HEADERS = (
    BEARER_CHALLENGE,
    OpenApiParameter(
        "Content-Disposition",
        OpenApiTypes.STR,
        OpenApiParameter.HEADER,
        description='with format=csv: attachment; filename="<site>-<report>.csv"',
        pattern='^attachment; filename=".+\\.csv"$',
        response=[200],
    ),
)


def report_responses(body: type[serializers.Serializer[Any]], name: str) -> dict[Any, Any]:
    """Every answer a report can give: its body (with the site and the report's name), its
    CSV export, and the errors."""

    @extend_schema_field({"type": "string", "enum": [name]})
    class ReportName(serializers.CharField):
        """The report's name: a one-value enum inline, not an enum component per report."""

    envelope = type(
        f"{name.title().replace('-', '')}ReportSerializer",
        (body,),
        {
            "__module__": __name__,
            "site": serializers.CharField(help_text="the site's public id"),
            "report": ReportName(),
        },
    )
    return {
        (200, "application/json"): OpenApiResponse(envelope, "The report."),
        (200, "text/csv"): OpenApiResponse(
            OpenApiTypes.STR, "With format=csv: the report's rows, a header line first."
        ),
        (400, "application/json"): OpenApiResponse(
            ReportErrorSerializer, "A parameter is wrong; the message names it."
        ),
        (401, "application/json"): UNAUTHENTICATED,
        (404, "application/json"): NOT_FOUND_SITE,
        (406, "application/json"): NOT_ACCEPTABLE,
    }
