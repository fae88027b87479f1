"""Django admin for tenancy: organizations, members, sites (with secret rotation), API tokens."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from sites.models import (
    ROLES_MANAGING_MEMBERS,
    ApiToken,
    Membership,
    Organization,
    Site,
    SiteSecret,
)
from sites.services import api_token_create, api_token_revoke, site_secret_rotate
from sites.signals import site_created
from sites.tenancy import OrganizationScopedAdmin, OrganizationScopedInline


class MembershipInline(OrganizationScopedInline, admin.TabularInline):
    """Members of the organization: owners and admins manage them, other members look."""

    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(OrganizationScopedAdmin):
    organization_path = "pk"
    editing_roles = ROLES_MANAGING_MEMBERS
    list_display = ["name", "slug", "site_count", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]

    @admin.display(description="sites")
    def site_count(self, obj: Organization) -> int:
        return obj.sites.count()

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser


@admin.register(Membership)
class MembershipAdmin(OrganizationScopedAdmin):
    editing_roles = ROLES_MANAGING_MEMBERS
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization"]
    search_fields = ["user__username", "user__email", "organization__name"]
    raw_id_fields = ["user"]


class SiteSecretInline(admin.TabularInline):
    """Shows when secrets were made and when they stop verifying; never the key itself."""

    model = SiteSecret
    fields = ["created_at", "expires_at"]
    readonly_fields = ["created_at", "expires_at"]
    extra = 0
    can_delete = False
    verbose_name_plural = "HMAC secrets (rotate with the action on the site list)"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Site)
class SiteAdmin(OrganizationScopedAdmin):
    list_display = [
        "name",
        "public_id",
        "organization",
        "timezone",
        "retention_days",
        "analytics_enabled",
        "ads_enabled",
        "consent_banner_enabled",
        "dashboard_link",
    ]
    list_filter = ["organization", "analytics_enabled", "ads_enabled", "consent_banner_enabled"]
    search_fields = ["name", "public_id", "organization__name"]
    readonly_fields = ["public_id", "created_at"]
    fieldsets = [
        (None, {"fields": ["organization", "name", "public_id", "allowed_domains", "timezone"]}),
        ("Data", {"fields": ["retention_days", "created_at"]}),
        (
            "Features",
            {
                "fields": [
                    "analytics_enabled",
                    "ads_enabled",
                    "consent_banner_enabled",
                    "track_outbound_links",
                    "track_file_downloads",
                    "track_engagement",
                    "respect_do_not_track",
                    "recommendations_enabled",
                ]
            },
        ),
    ]
    inlines = [SiteSecretInline]
    actions = ["rotate_secret"]

    @admin.display(description="analytics")
    def dashboard_link(self, obj: Site) -> str:
        return format_html('<a href="{}">Dashboard</a>', reverse("dashboard", args=[obj.public_id]))

    def save_model(self, request: HttpRequest, obj: Site, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not change:
            site_secret_rotate(site=obj)
            site_created.send(sender=Site, site=obj)  # consent gives it its banner

    @admin.action(
        description="Rotate the HMAC secret (old one valid during the grace period)",
        permissions=["change"],
    )
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[Site]) -> None:
        for site in queryset:
            site_secret_rotate(site=site)
        self.message_user(request, f"Rotated the secret of {queryset.count()} site(s).")


@admin.register(ApiToken)
class ApiTokenAdmin(OrganizationScopedAdmin):
    editing_roles = ROLES_MANAGING_MEMBERS
    list_display = ["name", "prefix", "organization", "created_at", "last_used_at", "state"]
    list_filter = ["organization"]
    search_fields = ["name", "prefix", "organization__name"]
    fields = ["organization", "name", "expires_at", "prefix", "created_at", "last_used_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    actions = ["revoke"]

    @admin.display(description="state")
    def state(self, obj: ApiToken) -> str:
        if obj.revoked_at:
            return "revoked"
        if obj.expires_at and obj.expires_at <= timezone.now():
            return "expired"
        return "active"

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        self.ensure_editable(request, obj)
        token, plaintext = api_token_create(
            organization=obj.organization,
            name=obj.name,
            created_by=request.user,
            expires_at=obj.expires_at,
        )
        obj.pk = token.pk
        obj.refresh_from_db()
        messages.warning(
            request,
            f"Copy the token now, it will not be shown again: {plaintext}",
        )

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset:
            api_token_revoke(token=token)
        self.message_user(request, f"Revoked {queryset.count()} token(s).")
