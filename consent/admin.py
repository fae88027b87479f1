"""Django admin of the consent app: banners with their purposes and texts, the snapshot of
each banner version and the decision records (both read-only: they are evidence), and the
proof-of-consent export (a ZIP of the records as CSV and the snapshots they point to as JSON).
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import zipfile
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import FileResponse, HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from consent.models import (
    BannerText,
    ConsentBanner,
    ConsentBannerSnapshot,
    ConsentPurpose,
    ConsentRecord,
)
from consent.selectors import (
    PROOF_OF_CONSENT_COLUMNS,
    proof_of_consent_rows,
    proof_of_consent_snapshots,
)
from consent.services import consent_banner_refresh_version
from sites.tenancy import OrganizationScopedAdmin


class ConsentPurposeInline(admin.StackedInline):
    model = ConsentPurpose
    extra = 0
    fields = [
        ("key", "name", "required", "order"),
        "description",
        ("tcf_purposes", "consent_mode_signals"),
        "translations",
    ]


class BannerTextInline(admin.StackedInline):
    model = BannerText
    extra = 0
    fields = [
        "language",
        "title",
        "body",
        ("accept_label", "reject_label", "customize_label"),
        ("save_label", "settings_label", "vendors_label"),
    ]


def proof_of_consent_archive(sites: list[Any]) -> Any:
    """A temporary file holding the ZIP: ``records.csv`` (every decision, oldest first, each
    naming its ``banner_snapshot``) and ``snapshots.json`` (what each banner version showed).
    Written to disk, not memory: a site may have millions of records."""
    archive = tempfile.TemporaryFile()  # noqa: SIM115 - the response closes it when sent
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        with zipped.open("records.csv", "w", force_zip64=True) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            writer = csv.writer(text)
            writer.writerow(["site", *PROOF_OF_CONSENT_COLUMNS])
            for site in sites:
                for row in proof_of_consent_rows(site=site):
                    writer.writerow([site.public_id, *row])
            text.flush()
            text.detach()
        snapshots = [item for site in sites for item in proof_of_consent_snapshots(site=site)]
        zipped.writestr("snapshots.json", json.dumps(snapshots, indent=1, sort_keys=True))
    archive.seek(0)
    return archive


@admin.register(ConsentBanner)
class ConsentBannerAdmin(OrganizationScopedAdmin):
    organization_path = "site__organization"
    list_display = [
        "site",
        "version",
        "position",
        "google_consent_mode",
        "tcf_enabled",
        "updated_at",
    ]
    list_filter = ["position", "google_consent_mode", "tcf_enabled"]
    search_fields = ["site__name", "site__public_id"]
    readonly_fields = ["version", "updated_at"]
    fieldsets = [
        (None, {"fields": ["site", "version", "default_language", "updated_at"]}),
        ("Proof of consent", {"fields": ["record_retention_days"]}),
        ("Look", {"fields": ["position", ("background_color", "text_color", "accent_color")]}),
        ("Google Consent Mode v2", {"fields": ["google_consent_mode"]}),
        (
            "IAB TCF v2.2",
            {
                "fields": [
                    "tcf_enabled",
                    ("tcf_cmp_id", "tcf_cmp_version", "tcf_publisher_country"),
                    "tcf_vendor_ids",
                ]
            },
        ),
    ]
    inlines = [ConsentPurposeInline, BannerTextInline]
    actions = ["export_proof_of_consent"]

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        if consent_banner_refresh_version(banner=form.instance):
            self.message_user(
                request, f"Version {form.instance.version}: visitors will be asked again."
            )

    @admin.action(description="Export the proof of consent (ZIP: records and banner snapshots)")
    def export_proof_of_consent(
        self, request: HttpRequest, queryset: QuerySet[ConsentBanner]
    ) -> FileResponse:
        sites = [banner.site for banner in queryset.select_related("site")]
        name = sites[0].public_id if len(sites) == 1 else "sites"
        stamp = timezone.now().strftime("%Y%m%d-%H%M")
        return FileResponse(
            proof_of_consent_archive(sites),
            as_attachment=True,
            filename=f"proof-of-consent-{name}-{stamp}.zip",
            content_type="application/zip",
        )


@admin.register(ConsentBannerSnapshot)
class ConsentBannerSnapshotAdmin(OrganizationScopedAdmin):
    """What each banner version showed. Evidence: nobody adds, edits or deletes one."""

    organization_path = "banner__site__organization"
    list_display = ["banner", "version", "revision", "created_at", "fingerprint"]
    list_select_related = ["banner__site"]
    list_filter = ["banner__site"]
    search_fields = ["banner__site__name", "banner__site__public_id"]
    readonly_fields = ["banner", "version", "revision", "created_at", "fingerprint"]
    readonly_fields.append("shown_content")  # evidence: every field shown, none edited
    fields = list(readonly_fields)

    @admin.display(description="content")
    def shown_content(self, snapshot: ConsentBannerSnapshot) -> str:
        return format_html(
            "<pre>{}</pre>", json.dumps(snapshot.content, indent=2, ensure_ascii=False)
        )

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ConsentRecord)
class ConsentRecordAdmin(OrganizationScopedAdmin):
    """Records are evidence: nobody edits or adds them by hand."""

    organization_path = "site__organization"
    list_display = [
        "recorded_at",
        "site",
        "visitor_id",
        "granted",
        "denied",
        "banner_version",
        "snapshot",
        "country",
        "mirrored_at",
    ]
    list_select_related = ["site", "snapshot__banner__site"]
    list_filter = ["site", "visitor_id_kind", "banner_version"]
    search_fields = ["visitor_id"]
    date_hierarchy = "recorded_at"

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
