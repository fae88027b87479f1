"""Django admin of the scans app: each site's scan configuration (editable by its
organization's editors) and its scans, read-only, with the pages' findings in one table where
what was set or loaded before consent is highlighted. Scoped to the caller's organizations
(sites.tenancy)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from scans.models import Scan, ScanConfig, ScanFinding
from sites.tenancy import OrganizationScopedAdmin

BEFORE_CONSENT_STYLE = "background:#fde7e9;color:#8a1f11;font-weight:bold"
SCAN_FIELDS = (
    "site",
    "status",
    "trigger",
    "started_at",
    "finished_at",
    "browser_version",
    "pages_scanned",
    "flagged",
    "error",
    "report",
)


@admin.register(ScanConfig)
class ScanConfigAdmin(OrganizationScopedAdmin):
    organization_path = "site__organization"
    list_display = ["site", "scheduled", "include_top_pages"]
    list_filter = ["scheduled"]
    search_fields = ["site__name", "site__public_id"]
    fields = ["site", "scheduled", "include_top_pages", "urls"]


@admin.register(Scan)
class ScanAdmin(OrganizationScopedAdmin):
    """Scans are what the browser saw: nobody adds or edits them by hand."""

    organization_path = "site__organization"
    list_display = [
        "started_at",
        "site",
        "status",
        "trigger",
        "pages_scanned",
        "before_consent",
    ]
    list_filter = ["site", "status", "trigger"]
    date_hierarchy = "started_at"
    fields = readonly_fields = SCAN_FIELDS

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="before consent", ordering="flagged")
    def before_consent(self, scan: Scan) -> SafeString:
        if not scan.flagged:
            return format_html("{}", 0)
        return format_html('<span style="{}">{}</span>', BEFORE_CONSENT_STYLE, scan.flagged)

    @admin.display(description="findings per page")
    def report(self, scan: Scan) -> SafeString:
        """One table per page; rows found before consent come first, highlighted."""
        parts = []
        for page in scan.pages.prefetch_related("findings"):
            state = page.error or (
                "Naboria banner accepted" if page.banner_found else "no Naboria banner found"
            )
            if page.blocked_hosts:
                state += f"; refused non-public hosts: {', '.join(page.blocked_hosts)}"
            findings = sorted(page.findings.all(), key=lambda finding: not finding.flagged)
            parts.append(
                format_html(
                    "<h3>{} <small>({}{})</small></h3>"
                    "<table><thead><tr><th>when</th><th>what</th><th>name / host</th>"
                    "<th>domain / origin</th><th>party</th><th>expires / types</th>"
                    "</tr></thead><tbody>{}</tbody></table>",
                    page.url,
                    f"HTTP {page.http_status}, " if page.http_status else "",
                    state,
                    format_html_join("", "{}", ((_row(finding),) for finding in findings))
                    or format_html("<tr><td colspan=6>{}</td></tr>", "nothing found"),
                )
            )
        return format_html_join("", "{}", ((part,) for part in parts)) or format_html(
            "{}", "no page"
        )


def _row(finding: ScanFinding) -> SafeString:
    detail = finding.resource_types
    if finding.kind == "request":
        detail = f"{detail} ({finding.requests} requests)"
    elif finding.kind == "cookie":
        detail = f"{finding.expires_at:%Y-%m-%d %H:%M}" if finding.expires_at else "session"
    return format_html(
        '<tr style="{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
        BEFORE_CONSENT_STYLE if finding.flagged else "",
        finding.get_phase_display(),
        finding.get_kind_display(),
        finding.name,
        finding.domain,
        finding.get_party_display(),
        detail,
    )
