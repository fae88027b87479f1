"""Django admin of ad authoring: advertisers, campaigns with their ads inline, ads with creative
previews and video files (or a wrapper's VAST tag URL), placements. Every save publishes to
delivery (ads.publishing); bulk pause / resume are list actions.

Each model's admin is scoped to the user's organizations (sites.tenancy): its lists, the
choices of its forms (a campaign's advertiser and placements, an ad's campaign, a placement's
site), its inlines and its actions; a campaign's placements must moreover be on sites of its
advertiser's organization (ads.models refuses it too, outside the admin).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from ads.models import (
    Ad,
    AdStatus,
    Advertiser,
    Campaign,
    CampaignStatus,
    CreativeKind,
    Placement,
    VideoFile,
    validate_placements_of_organization,
)
from ads.publishing import (
    ads_publish,
    ads_withdraw,
    campaigns_publish,
    placement_withdraw,
    placements_publish,
)
from ads.services import ads_set_status, campaigns_set_status
from sites.tenancy import OrganizationScopedAdmin, OrganizationScopedInline


def creative_preview(ad: Ad) -> str:
    """A small rendering of the creative, as visitors will see it."""
    if ad.pk is None:
        return "Save to see a preview."
    if ad.kind == CreativeKind.IMAGE:
        return format_html(
            '<img src="{}" width="{}" height="{}" alt="" style="max-width:320px;height:auto">',
            ad.image_url,
            ad.width,
            ad.height,
        )
    if ad.kind == CreativeKind.HTML:
        return format_html(
            '<iframe sandbox srcdoc="{}" width="{}" height="{}" style="border:1px solid #ccc">'
            "</iframe>",
            ad.html,
            ad.width,
            ad.height,
        )
    if ad.kind == CreativeKind.NATIVE:
        return format_html(
            '<div style="max-width:320px;border:1px solid #ccc;padding:8px">'
            '<img src="{}" alt="" style="max-width:100%"><strong>{}</strong><p>{}</p>'
            "<span>{} →</span></div>",
            ad.image_url,
            ad.title,
            ad.text,
            ad.call_to_action,
        )
    if ad.is_wrapper:
        return format_html(
            "A wrapper: players play the VAST of <code>{}</code>, with Naboria's tracking.",
            ad.vast_tag_url,
        )
    first = ad.video_files.first()
    if first is None:
        return "Add a video file to see a preview."
    return format_html('<video src="{}" controls width="320"></video>', first.url)


class AdInline(OrganizationScopedInline, admin.StackedInline):
    model = Ad
    extra = 0
    show_change_link = True
    fields = [
        ("name", "status", "kind"),
        "click_url",
        ("width", "height", "image_url"),
        "html",
        ("title", "call_to_action"),
        "text",
        ("duration_seconds", "vast_tag_url"),
        "preview",
    ]
    readonly_fields = ["preview"]

    @admin.display(description="preview")
    def preview(self, obj: Ad) -> str:
        return creative_preview(obj)


class VideoFileInline(OrganizationScopedInline, admin.TabularInline):
    model = VideoFile
    extra = 0


@admin.register(Advertiser)
class AdvertiserAdmin(OrganizationScopedAdmin):
    list_display = ["name", "organization", "website", "created_at"]
    list_filter = ["organization"]
    search_fields = ["name"]


@admin.register(Placement)
class PlacementAdmin(OrganizationScopedAdmin):
    organization_path = "site__organization"
    list_display = ["name", "site", "key", "sizes", "formats", "rotation_seconds"]
    list_filter = ["site"]
    search_fields = ["name", "key", "site__name"]
    readonly_fields = ["key", "embed_code"]

    @admin.display(description="embed code")
    def embed_code(self, obj: Placement) -> str:
        if obj.pk is None:
            return "Save to get the embed code."
        return format_html(
            "<code>&lt;div data-naboria-slot=&quot;{}&quot;&gt;&lt;/div&gt;</code> "
            "on a page that carries the site's tracker tag",
            obj.key,
        )

    def save_model(self, request: HttpRequest, obj: Placement, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        placements_publish(placements=[obj])

    def delete_model(self, request: HttpRequest, obj: Placement) -> None:
        placement_id = obj.pk
        super().delete_model(request, obj)
        placement_withdraw(placement_id=placement_id)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Placement]) -> None:
        # The list's bulk delete: withdrawn from delivery like a single delete.
        placement_ids = list(queryset.values_list("pk", flat=True))
        super().delete_queryset(request, queryset)
        for placement_id in placement_ids:
            placement_withdraw(placement_id=placement_id)


class CampaignForm(forms.ModelForm):
    """Checks the chosen placements against the chosen advertiser. Each choice alone is
    limited to the user's organizations; a user of two could still pair them across."""

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        advertiser, placements = cleaned.get("advertiser"), cleaned.get("placements")
        if advertiser is not None and placements:
            try:
                validate_placements_of_organization(
                    organization_id=advertiser.organization_id,
                    placement_ids=[placement.pk for placement in placements],
                )
            except ValidationError as error:
                self.add_error(None, error)
        return cleaned


@admin.register(Campaign)
class CampaignAdmin(OrganizationScopedAdmin):
    form = CampaignForm
    organization_path = "advertiser__organization"
    list_display = [
        "name",
        "advertiser",
        "status",
        "starts_at",
        "ends_at",
        "priority",
        "weight",
        "pacing",
        "pricing",
        "ad_count",
    ]
    list_filter = ["status", "pacing", "pricing", "advertiser"]
    search_fields = ["name", "advertiser__name"]
    filter_horizontal = ["placements"]
    fieldsets = [
        (None, {"fields": ["advertiser", "name", "status", ("starts_at", "ends_at")]}),
        ("Delivery", {"fields": [("priority", "weight", "pacing")]}),
        (
            "Pricing and budget (0 = none)",
            {
                "fields": [
                    ("pricing", "currency"),
                    ("rate", "flat_fee"),
                    ("budget", "daily_budget"),
                ],
                "description": "What the advertiser pays: a CPM rate per 1,000 impressions, a "
                "CPC rate per click, a CPA rate per conversion, or a flat fee. Delivery stops "
                "when the spend reaches the budget (in all) or the daily budget (per UTC day); "
                "bots never spend.",
            },
        ),
        (
            "Conversions",
            {
                "fields": [("goal_event", "goal_path"), ("post_click_days", "post_view_days")],
                "description": "A conversion is the goal event by a visitor after a click on "
                "one of the campaign's ads within the post-click window, or, without a click, "
                "after an impression within the post-view window; it goes to the last touch. "
                "A CPA campaign needs a goal; any campaign with one has conversions in the "
                "ads report.",
            },
        ),
        (
            "Impression goal and caps (0 = none)",
            {
                "fields": [
                    ("impression_goal", "daily_cap", "lifetime_cap"),
                    ("frequency_cap", "frequency_period"),
                ]
            },
        ),
        (
            "Targeting (empty = everyone)",
            {
                "fields": [
                    "placements",
                    ("target_countries", "target_devices"),
                    "target_paths",
                    ("target_weekdays", "target_hours"),
                ]
            },
        ),
    ]
    inlines = [AdInline]
    actions = ["pause", "resume"]

    @admin.display(description="ads")
    def ad_count(self, obj: Campaign) -> int:
        return obj.ads.count()

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        super().save_formset(request, form, formset, change)
        if formset.deleted_objects:
            ads_withdraw(ad_ids=[ad.pk for ad in formset.deleted_objects if ad.pk])

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        live = campaigns_publish(campaigns=[form.instance])
        self.message_user(request, f"Published: {live} live ad(s) of this campaign.")

    def delete_model(self, request: HttpRequest, obj: Campaign) -> None:
        ad_ids = list(obj.ads.values_list("pk", flat=True))
        super().delete_model(request, obj)
        ads_withdraw(ad_ids=ad_ids)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        ad_ids = list(Ad.objects.filter(campaign__in=queryset).values_list("pk", flat=True))
        super().delete_queryset(request, queryset)
        ads_withdraw(ad_ids=ad_ids)

    @admin.action(description="Pause the selected campaigns", permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        count = campaigns_set_status(campaigns=queryset, status=CampaignStatus.PAUSED)
        self.message_user(request, f"Paused {count} campaign(s); their ads left delivery.")

    @admin.action(description="Resume (activate) the selected campaigns", permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        count = campaigns_set_status(campaigns=queryset, status=CampaignStatus.ACTIVE)
        self.message_user(request, f"Activated {count} campaign(s).")


@admin.register(Ad)
class AdAdmin(OrganizationScopedAdmin):
    organization_path = "campaign__advertiser__organization"
    list_display = ["name", "campaign", "kind", "status", "size", "version", "updated_at"]
    list_filter = ["kind", "status", "campaign__advertiser"]
    search_fields = ["name", "campaign__name"]
    readonly_fields = ["preview", "version"]
    inlines = [VideoFileInline]
    actions = ["pause", "resume"]

    @admin.display(description="preview")
    def preview(self, obj: Ad) -> str:
        return creative_preview(obj)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        ads_publish(ads=[form.instance])

    def delete_model(self, request: HttpRequest, obj: Ad) -> None:
        ad_id = obj.pk
        super().delete_model(request, obj)
        ads_withdraw(ad_ids=[ad_id])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Ad]) -> None:
        ad_ids = list(queryset.values_list("pk", flat=True))
        super().delete_queryset(request, queryset)
        ads_withdraw(ad_ids=ad_ids)

    @admin.action(description="Pause the selected ads", permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Ad]) -> None:
        self.message_user(
            request, f"Paused {ads_set_status(ads=queryset, status=AdStatus.PAUSED)} ad(s)."
        )

    @admin.action(description="Resume the selected ads", permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Ad]) -> None:
        self.message_user(
            request, f"Resumed {ads_set_status(ads=queryset, status=AdStatus.ACTIVE)} ad(s)."
        )
