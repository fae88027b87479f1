"""Django admin of the tag manager: site owners add, edit, enable and disable the tags of their
organizations' sites (sites.tenancy scopes lists, forms and actions), each bound to purposes
of the site's banner."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from consent.models import ConsentPurpose
from sites.tenancy import OrganizationScopedAdmin
from tags.models import Tag


def purposes_field(choices: list[tuple[str, str]]) -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        choices=choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="The tag runs once the visitor has granted all of them, and stops when one "
        "is withdrawn.",
    )


class TagForm(forms.ModelForm):
    # Replaced per request (TagAdmin.get_form): the purposes of the sites the user may edit.
    purposes = purposes_field([])

    class Meta:
        model = Tag
        fields = [
            "site",
            "name",
            "template",
            "purposes",
            "enabled",
            "order",
            "tracking_id",
            "url",
            "code",
            "title",
            "container",
            "width",
            "height",
            "cookies",
            "reload_on_withdrawal",
        ]


def purpose_choices(*, organization_ids: set[int] | None) -> list[tuple[str, str]]:
    """(key, label) of the purposes of the banners of these organizations' sites (None: all)."""
    purposes = ConsentPurpose.objects.order_by("order", "key")
    if organization_ids is not None:
        purposes = purposes.filter(banner__site__organization__in=organization_ids)
    names: dict[str, list[str]] = {}
    for key, name in purposes.values_list("key", "name"):
        if name not in names.setdefault(key, []):
            names[key].append(name)
    return [(key, f"{key}: {' / '.join(labels)}") for key, labels in names.items()]


@admin.register(Tag)
class TagAdmin(OrganizationScopedAdmin):
    organization_path = "site__organization"
    form = TagForm
    list_display = ["name", "site", "template", "purposes_shown", "enabled", "order", "updated_at"]
    list_filter = ["site", "template", "enabled"]
    search_fields = ["name", "site__name", "site__public_id", "tracking_id"]
    readonly_fields = ["updated_at"]
    actions = ["enable_tags", "disable_tags"]
    fieldsets = [
        (None, {"fields": ["site", "name", "template", "purposes", ("enabled", "order")]}),
        (
            "Google Analytics 4, Google Ads, Meta Pixel, LinkedIn Insight",
            {"fields": ["tracking_id"]},
        ),
        (
            "Custom script, iframe, pixel",
            {
                "fields": ["url", "code", "title", ("container", "width", "height")],
                "description": "A custom script takes a URL, code or both; an iframe a URL and "
                "a title; a pixel a URL. docs/tags.md says what code may contain.",
            },
        ),
        ("On withdrawal", {"fields": ["cookies", "reload_on_withdrawal", "updated_at"]}),
    ]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        organization_ids = None if request.user.is_superuser else self._editor_ids(request)
        choices = purpose_choices(organization_ids=organization_ids)
        # Keys the tag already has stay listed (a purpose since removed from the banner shows,
        # and clean() says it is unknown) rather than vanish silently.
        known = {key for key, _ in choices}
        choices += [
            (key, f"{key}: (not in the banner)")
            for key in (obj.purposes if obj else [])
            if key not in known
        ]
        # A field of its own: the declared one is shared by every request's form class.
        form.base_fields["purposes"] = purposes_field(choices)
        return form

    def save_model(self, request: HttpRequest, obj: Tag, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not obj.site.consent_banner_enabled:
            self.message_user(
                request,
                f"{obj.site.name} has its consent banner off: its tags are not served until it "
                "is on (they wait for the banner's purposes).",
                level=messages.WARNING,
            )

    @admin.display(description="purposes")
    def purposes_shown(self, tag: Tag) -> str:
        return ", ".join(tag.purposes)

    @admin.action(description="Enable the selected tags")
    def enable_tags(self, request: HttpRequest, queryset: QuerySet[Tag]) -> None:
        self.message_user(request, f"{queryset.update(enabled=True)} tag(s) enabled.")

    @admin.action(description="Disable the selected tags")
    def disable_tags(self, request: HttpRequest, queryset: QuerySet[Tag]) -> None:
        self.message_user(request, f"{queryset.update(enabled=False)} tag(s) disabled.")
