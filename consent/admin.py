"""Django admin of the consent app: banners with their purposes, texts and TCF publisher
restrictions, decision records (read-only) and the proof-of-consent CSV export. Banner pages
warn when the IAB vendor list in use is stale."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone

from consent import vendor_list
from consent.models import (
    BannerText,
    ConsentBanner,
    ConsentPurpose,
    ConsentRecord,
    TcfPublisherRestriction,
)
from consent.selectors import PROOF_OF_CONSENT_COLUMNS, proof_of_consent_rows
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


class _EchoBuffer:
    """csv.writer target that hands each line back instead of storing it."""

    def write(self, value: str) -> str:
        return value


def _csv_lines(site_rows: Iterator[tuple[str, list[str]]]) -> Iterator[str]:
    writer = csv.writer(_EchoBuffer())
    yield writer.writerow(["site", *PROOF_OF_CONSENT_COLUMNS])
    for site_id, row in site_rows:
        yield writer.writerow([site_id, *row])


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

    @admin.action(description="Export the proof of consent (CSV)")
    def export_proof_of_consent(
        self, request: HttpRequest, queryset: QuerySet[ConsentBanner]
    ) -> StreamingHttpResponse:
        sites = [banner.site for banner in queryset.select_related("site")]
        rows = ((site.public_id, row) for site in sites for row in proof_of_consent_rows(site=site))
        name = sites[0].public_id if len(sites) == 1 else "sites"
        response = StreamingHttpResponse(_csv_lines(rows), content_type="text/csv")
        stamp = timezone.now().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = (
            f'attachment; filename="proof-of-consent-{name}-{stamp}.csv"'
        )
        return response


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
        "country",
        "mirrored_at",
    ]
    list_filter = ["site", "visitor_id_kind", "banner_version"]
    search_fields = ["visitor_id"]
    date_hierarchy = "recorded_at"

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
