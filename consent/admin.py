"""Django admin of the consent app: banners with their purposes, texts and TCF publisher
restrictions, the snapshot of each banner version and the decision records (both read-only:
they are evidence), and the proof-of-consent export (a ZIP of the records as CSV and the
snapshots they point to as JSON). Banner pages warn when the IAB vendor list in use is stale.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import zipfile
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import FileResponse, HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.html import format_html

from consent import vendor_list
from consent.models import (
    BannerText,
    ConsentBanner,
    ConsentBannerSnapshot,
    ConsentPurpose,
    ConsentRecord,
    TcfPublisherRestriction,
)
from consent.selectors import (
    PROOF_OF_CONSENT_COLUMNS,
    proof_of_consent_rows,
    proof_of_consent_snapshots,
)
from consent.services import consent_banner_refresh_version
from sites.tenancy import OrganizationScopedAdmin, OrganizationScopedInline


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
        "tcf_notice",
        "tcf_labels",
    ]


class TcfRestrictionInline(OrganizationScopedInline, admin.TabularInline):
    """Publisher restrictions, one per TCF purpose, encoded in every TC string."""

    model = TcfPublisherRestriction
    extra = 0
    fields = ["purpose", "restriction_type", "vendor_ids"]
    verbose_name = "TCF publisher restriction"


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


class ConsentBannerForm(forms.ModelForm):
    minor_edit = forms.BooleanField(
        required=False,
        label="Minor edit: do not ask visitors again",
        help_text="Tick for a change that does not alter what visitors agree to (a typo fix, a "
        "clearer wording). A new version is kept either way. Changes of purposes, their TCF "
        "purposes or signals, or vendors always ask everyone again.",
    )


@admin.register(ConsentBanner)
class ConsentBannerAdmin(OrganizationScopedAdmin):
    form = ConsentBannerForm
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
    readonly_fields = ["version", "reprompt_version", "updated_at"]
    fieldsets = [
        (
            None,
            {"fields": ["site", ("version", "reprompt_version"), "default_language", "updated_at"]},
        ),
        (
            "Expiry, changes and regions",
            {"fields": ["consent_expiry_months", "minor_edit", "outside_regulated_regions"]},
        ),
        ("Proof of consent", {"fields": ["record_retention_days"]}),
        ("Look", {"fields": ["position", ("background_color", "text_color", "accent_color")]}),
        ("Google Consent Mode v2", {"fields": ["google_consent_mode", "consent_mode_type"]}),
        (
            "IAB TCF v2.2",
            {
                "fields": [
                    "tcf_enabled",
                    ("tcf_cmp_id", "tcf_cmp_version", "tcf_publisher_country"),
                    "tcf_vendor_ids",
                    "tcf_non_standard_texts",
                ]
            },
        ),
    ]
    inlines = [ConsentPurposeInline, BannerTextInline, TcfRestrictionInline]
    actions = ["export_proof_of_consent"]

    def _warn_if_vendor_list_stale(self, request: HttpRequest) -> None:
        warning = vendor_list.staleness_warning()
        if warning and request.method == "GET":
            self.message_user(request, warning, messages.WARNING)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        self._warn_if_vendor_list_stale(request)
        return super().changelist_view(request, extra_context)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: Any = None,
    ) -> HttpResponse:
        self._warn_if_vendor_list_stale(request)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        change_kind = consent_banner_refresh_version(
            banner=form.instance, material=not form.cleaned_data.get("minor_edit")
        )
        if change_kind == "material":
            self.message_user(
                request, f"Version {form.instance.version}: visitors will be asked again."
            )
        elif change_kind == "minor":
            self.message_user(
                request,
                f"Version {form.instance.version} (minor edit): decisions already given "
                "still count.",
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


class EvidenceAdmin(OrganizationScopedAdmin):
    """Evidence (snapshots, decision records): shown, never added, changed or deleted by hand."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ConsentBannerSnapshot)
class ConsentBannerSnapshotAdmin(EvidenceAdmin):
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


@admin.register(ConsentRecord)
class ConsentRecordAdmin(EvidenceAdmin):
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
