"""REST API of the reports: ``GET /api/v1/sites/<public id>/reports/<report>``.

Token (``Authorization: Bearer nab_…``) or session authentication; a caller reads only the sites
of its organizations (others answer 404, so their existence is not revealed). Every report takes
the common parameters of analytics.reports.query (``from``, ``to``, ``compare``, ``bots``,
``sampling`` and the filters, or a saved segment's with ``segment=<id>``) plus its own;
``format=csv`` exports the rows (another format is a 400). Answers are cached for
REPORT_CACHE_SECONDS (realtime never); wrong parameters, and filters a report cannot apply,
answer 400 with a message.
The OpenAPI schema (analytics.api_schema describes the answers) is at /api/schema/, interactive
docs at /api/docs/.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import renderers, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import api_schema
from analytics.api_schema import MAX_PAGE, MAX_PAGE_SIZE
from analytics.reports import (
    ad_revenue,
    ads_and_consent,
    app_releases,
    conversions,
    engagement,
    traffic,
)
from analytics.reports.query import InvalidReportQuery, ReportQuery
from analytics.selectors import segment_filters
from sites.selectors import sites_readable_by

REPORT_CACHE_SECONDS = 60


def _int(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    value = params.get(name)
    if value is None:
        return default
    # isascii: str.isdigit accepts digits int() refuses, such as "²"
    if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
        raise InvalidReportQuery(f"{name}: a whole number from {low} to {high}")
    return int(value)


def _page(params: dict[str, str]) -> dict[str, int]:
    size = _int(params, "page_size", 10, 1, MAX_PAGE_SIZE)
    return {"limit": size, "offset": (_int(params, "page", 1, 1, MAX_PAGE) - 1) * size}


def _realtime(query: ReportQuery) -> dict[str, Any]:
    query.refuse_filters("realtime")
    return traffic.realtime(site_id=query.site_id, include_bots=query.include_bots)


def _app(params: dict[str, str]) -> str:
    app = params.get("app", "")
    if app and not re.fullmatch(api_schema.APP_PATTERN, app):
        raise InvalidReportQuery("app: an app id (letters, digits, . _ : -; at most 64)")
    return app


@dataclass(frozen=True)
class Report:
    name: str
    run: Callable[[ReportQuery, dict[str, str]], dict[str, Any]]
    rows_key: str  # the list a CSV export writes
    description: str
    body: type[serializers.Serializer[Any]]  # what ``run`` returns, for the OpenAPI schema
    parameters: tuple[OpenApiParameter, ...] = ()
    cached: bool = True
    paginated: bool = False


REPORTS = {
    report.name: report
    for report in [
        Report(
            "overview",
            lambda query, params: traffic.overview(query),
            "",
            "Visitors, visits, pageviews, views per visit, bounce rate, visit duration; with "
            "`compare`, the comparison period and the change in percent.",
            api_schema.OverviewSerializer,
        ),
        Report(
            "dashboard",
            lambda query, params: traffic.dashboard(
                query,
                interval=params.get("interval", "day"),
                limit=_page(params)["limit"],
            ),
            "",
            "What the dashboard's overview tab shows, in one request: `overview` (as the "
            "overview report), `timeseries` (as the timeseries report) and `breakdowns` of "
            "pages, sources, countries, devices and browsers (each as the breakdown report).",
            api_schema.DashboardSerializer,
            (
                api_schema.interval_parameter(),
                api_schema.page_size_parameter("entries per top list"),
            ),
        ),
        Report(
            "timeseries",
            lambda query, params: traffic.timeseries(query, interval=params.get("interval", "day")),
            "points",
            "Visitors, visits and pageviews per hour, day, week or month (site time).",
            api_schema.TimeseriesSerializer,
            (api_schema.interval_parameter(),),
        ),
        Report(
            "breakdown",
            lambda query, params: traffic.breakdown(
                query, dimension=params.get("dimension", "pages"), **_page(params)
            ),
            "results",
            "Top values of a dimension: " + ", ".join(sorted(traffic.BREAKDOWNS)) + ".",
            api_schema.PagedBreakdownSerializer,
            (
                api_schema.query_parameter(
                    "dimension",
                    "what to break down by",
                    enum=tuple(sorted(traffic.BREAKDOWNS)),
                    default="pages",
                ),
                *api_schema.page_parameters(),
            ),
            paginated=True,
        ),
        Report(
            "entry-pages",
            lambda query, params: traffic.entry_exit_pages(
                query, which="entry", limit=_page(params)["limit"]
            ),
            "results",
            "Pages where visits began.",
            api_schema.EntryExitSerializer,
            api_schema.page_parameters(),
        ),
        Report(
            "exit-pages",
            lambda query, params: traffic.entry_exit_pages(
                query, which="exit", limit=_page(params)["limit"]
            ),
            "results",
            "Pages where visits ended.",
            api_schema.EntryExitSerializer,
            api_schema.page_parameters(),
        ),
        Report(
            "goals",
            lambda query, params: conversions.custom_events(query, limit=_page(params)["limit"]),
            "results",
            "Custom events with their visitors, counts and conversion rates.",
            api_schema.GoalsSerializer,
            api_schema.page_parameters(),
        ),
        Report(
            "properties",
            lambda query, params: conversions.event_properties(
                query,
                event=params.get("event", ""),
                key=params.get("key", ""),
                limit=_page(params)["limit"],
            ),
            "results",
            "Values of one property of a custom event.",
            api_schema.PropertiesSerializer,
            (
                api_schema.query_parameter("event", "the custom event"),
                api_schema.query_parameter("key", "the property"),
                *api_schema.page_parameters(),
            ),
        ),
        Report(
            "funnel",
            lambda query, params: conversions.funnel(
                query, steps=[step for step in params.get("steps", "").split(",") if step]
            ),
            "steps",
            "Visits through ordered steps within a session, with drop-off per step.",
            api_schema.FunnelSerializer,
            (
                api_schema.query_parameter(
                    "steps",
                    f"2 to {conversions.MAX_FUNNEL_STEPS} steps, comma-separated: page paths "
                    "(/pricing; * is a wildcard: /blog/*) or event:<name>",
                    pattern=api_schema.FUNNEL_STEPS_PATTERN,
                    required=True,
                ),
            ),
        ),
        Report(
            "retention",
            lambda query, params: conversions.retention(
                query, weeks=_int(params, "weeks", 8, 1, conversions.MAX_RETENTION_WEEKS)
            ),
            "cohorts",
            "Weekly cohorts of first visits and how many came back each following week.",
            api_schema.RetentionSerializer,
            (
                api_schema.query_parameter(
                    "weeks",
                    "weeks to follow",
                    int,
                    default=8,
                    low=1,
                    high=conversions.MAX_RETENTION_WEEKS,
                ),
            ),
        ),
        Report(
            "outbound-links",
            lambda query, params: engagement.followed_links(
                query, kind="outbound", **_page(params)
            ),
            "results",
            "Outbound links followed: each target with its visitors and clicks.",
            api_schema.FollowedLinksSerializer,
            api_schema.page_parameters(),
            paginated=True,
        ),
        Report(
            "downloads",
            lambda query, params: engagement.followed_links(
                query, kind="download", **_page(params)
            ),
            "results",
            "File downloads: each file with its visitors and clicks.",
            api_schema.FollowedLinksSerializer,
            api_schema.page_parameters(),
            paginated=True,
        ),
        Report(
            "engagement",
            lambda query, params: engagement.page_engagement(query, **_page(params)),
            "results",
            "Per page: pageviews, visitors, time on page (visible seconds per pageview) and "
            "average scroll depth (%).",
            api_schema.EngagementSerializer,
            api_schema.page_parameters(),
            paginated=True,
        ),
        Report(
            "ads",
            lambda query, params: ads_and_consent.ad_performance(
                query, by=params.get("by", "campaign")
            ),
            "results",
            "Impressions, viewable rate, clicks and CTR; video starts, quartiles, completes and "
            "completion rate.",
            api_schema.AdsSerializer,
            (
                api_schema.query_parameter(
                    "by",
                    "what a row is",
                    enum=tuple(ads_and_consent.AD_GROUPINGS),
                    default="campaign",
                ),
            ),
        ),
        Report(
            "ad-revenue",
            lambda query, params: ad_revenue.ad_revenue(query),
            "results",
            "Per campaign and ad: impressions, clicks, conversions (post-click and post-view, "
            "last touch), revenue by the campaign's pricing model and eCPM, with totals per "
            "currency. Bots never count; filters do not apply.",
            api_schema.AdRevenueSerializer,
        ),
        Report(
            "consent",
            lambda query, params: ads_and_consent.consent_rates(query),
            "results",
            "Share of recorded consent decisions granting each purpose.",
            api_schema.ConsentSerializer,
        ),
        Report(
            "app-adoption",
            lambda query, params: app_releases.adoption(
                query, app=_app(params), interval=params.get("interval", "hour")
            ),
            "points",
            "App updates: started, installed, failed, cancelled, rolled back, devices updated "
            "and success rate, with installs, failures and success rate per hour (or day).",
            api_schema.AdoptionSerializer,
            (
                api_schema.app_parameter(),
                api_schema.query_parameter(
                    "interval",
                    "length of a point, site time",
                    enum=app_releases.INTERVALS,
                    default="hour",
                ),
            ),
        ),
        Report(
            "app-versions",
            lambda query, params: app_releases.versions(query, app=_app(params)),
            "results",
            "The version each device that sent update events in the period runs after its "
            "latest one (the target of an install, else its current version), with devices.",
            api_schema.VersionsSerializer,
            (api_schema.app_parameter(),),
        ),
        Report(
            "app-active-devices",
            lambda query, params: app_releases.active_devices(query, app=_app(params)),
            "points",
            "Devices that sent any event of an app, per day and over the period.",
            api_schema.ActiveDevicesSerializer,
            (api_schema.app_parameter(),),
        ),
        Report(
            "app-failures",
            lambda query, params: app_releases.failures(
                query, app=_app(params), limit=_page(params)["limit"]
            ),
            "target_version",
            "Failed updates by error code, failure stage, target version (with its failure "
            "rate) and device model.",
            api_schema.FailuresSerializer,
            (api_schema.app_parameter(), api_schema.page_size_parameter("rows per breakdown")),
        ),
        Report(
            "app-performance",
            lambda query, params: app_releases.performance(query, app=_app(params)),
            "versions",
            "p50, p90 and p99 of download speed (Mbps), download duration and install "
            "duration (ms), overall and per target version.",
            api_schema.PerformanceSerializer,
            (api_schema.app_parameter(),),
        ),
        Report(
            "realtime",
            lambda query, params: _realtime(query),
            "pages",
            "Visitors in the last 5 minutes and the pages they are on (never cached; no filters).",
            api_schema.RealtimeSerializer,
            cached=False,
        ),
    ]
}


class CSVRenderer(renderers.BaseRenderer):
    """The report's rows as CSV, one column per field."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        rows = data["csv_rows"]  # errors are JSON (ReportView.finalize_response)
        output = io.StringIO()
        fields = list(dict.fromkeys(key for row in rows for key in row))
        writer = csv.DictWriter(output, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _cell(value) for key, value in row.items()})
        return output.getvalue().encode()


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, list | dict) else value


class ReportView(APIView):
    renderer_classes = [renderers.JSONRenderer, CSVRenderer]
    report: Report

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        try:
            return super().perform_content_negotiation(request, force)
        except Http404:  # how DRF refuses an unknown ?format=
            wanted = request.query_params.get("format")
            raise ValidationError({"error": f"format: json or csv, not {wanted!r}"}) from None

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        # An error answers in JSON even when CSV was asked for (a CSV cell would lose its
        # message, and clients read every error the same way), and so does OPTIONS (DRF's
        # description of the view, not a report).
        if response.status_code >= 400 or request.method == "OPTIONS":
            request.accepted_renderer = renderers.JSONRenderer()
            request.accepted_media_type = request.accepted_renderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    def get(self, request: Request, public_id: str) -> Response:
        site = get_object_or_404(sites_readable_by(principal=request.user), public_id=public_id)
        params = {key: str(value) for key, value in request.query_params.items()}
        params.pop("format", None)
        if "segment" in params:
            # The segment's filters, under those the request names itself.
            try:
                saved = segment_filters(site=site, segment_id=params.pop("segment"))
            except InvalidReportQuery as error:
                raise ValidationError({"error": str(error)}) from None
            params = {**saved, **params}
        report = self.report
        key = (
            "report:"
            + hashlib.sha256(
                json.dumps(
                    [report.name, site.public_id, site.timezone, sorted(params.items())]
                ).encode()
            ).hexdigest()
        )
        answer = cache.get(key) if report.cached else None
        if answer is None:
            try:
                query = ReportQuery.parse(
                    site_id=site.public_id, timezone=site.timezone, params=params
                )
                answer = report.run(query, params)
            except InvalidReportQuery as error:
                raise ValidationError({"error": str(error)}) from None
            if report.cached:
                cache.set(key, answer, REPORT_CACHE_SECONDS)
        body = {"site": site.public_id, "report": report.name, **answer}
        if report.paginated:
            body.update(self._pages(request, params, len(answer.get("results", []))))
        if (
            getattr(request, "accepted_renderer", None)
            and request.accepted_renderer.format == "csv"
        ):
            rows = (
                answer.get(report.rows_key)
                if report.rows_key
                else [answer.get("period") or answer["overview"]["period"]]
            )
            body = {"csv_rows": rows or []}
            response = Response(body)
            response["Content-Disposition"] = (
                f'attachment; filename="{site.public_id}-{report.name}.csv"'
            )
            return response
        return Response(body)

    @staticmethod
    def _pages(request: Request, params: dict[str, str], count: int) -> dict[str, str | None]:
        page = int(params.get("page", "1") or 1)
        size = int(params.get("page_size", "10") or 10)

        def link(number: int) -> str:
            query = request.query_params.copy()
            query["page"] = str(number)
            return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")

        return {
            "next": link(page + 1) if count == size else None,
            "previous": link(page - 1) if page > 1 else None,
        }


def report_view(report: Report) -> Callable[..., Any]:
    """A view class per report, so the OpenAPI schema documents each one."""
    view: type[ReportView] = type(
        f"{report.name.title().replace('-', '')}ReportView", (ReportView,), {"report": report}
    )
    schema = extend_schema(
        operation_id=f"report_{report.name.replace('-', '_')}",
        summary=report.name,
        description=report.description,
        parameters=[
            api_schema.SITE_PARAMETER,
            *api_schema.COMMON_PARAMETERS,
            *report.parameters,
            *api_schema.RESPONSE_HEADERS,
        ],
        responses=api_schema.report_responses(report.body, report.name),
        tags=["reports"],
    )
    decorated: type[ReportView] = extend_schema_view(get=schema)(view)
    return decorated.as_view()
