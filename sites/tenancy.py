"""Organization scoping for Django admin, shared by every app whose objects belong to a tenant.

A staff user who is not a superuser sees only objects of the organizations they are a member
of, and changes them only with a role allowed to: marketers edit content, owners and admins
also manage members and tokens, analysts only look. Subclass :class:`OrganizationScopedAdmin`
and set ``organization_path`` to the lookup from the model to its Organization; give it
:class:`OrganizationScopedInline` inlines.

Every way a scoped admin names another object is scoped as well: the choices of its foreign
keys and many-to-many fields (to any model whose admin is organization-scoped) offer only
objects of the organizations the user may edit, so a forged id fails the form's validation;
its list filters list only related objects the user can see; its bulk actions act only on
objects the user may edit. Autocomplete answers come from the target model's admin, hence
from the organizations the user is a member of.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import InlineModelAdmin
from django.contrib.admin.utils import get_fields_from_path
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db.models import ForeignKey, ManyToManyField, Model, QuerySet
from django.forms import ModelChoiceField, ModelMultipleChoiceField
from django.http import HttpRequest, HttpResponse

from sites.models import ROLES_EDITING_CONTENT
from sites.selectors import organization_ids_for_user


def _organization_ids(request: HttpRequest, roles: frozenset[str] | None) -> set[int]:
    """The user's organizations (with one of ``roles``), read once per request: a change form
    asks for every permission and every related field."""
    cache: dict[frozenset[str] | None, set[int]] | None = getattr(
        request, "_naboria_organization_ids", None
    )
    if cache is None:
        cache = {}
        request._naboria_organization_ids = cache  # type: ignore[attr-defined]
    if roles not in cache:
        cache[roles] = organization_ids_for_user(user=request.user, roles=roles)
    return cache[roles]


def _scoped_choices(
    admin_site: admin.AdminSite, model: type[Model], organization_ids: Iterable[int]
) -> QuerySet[Any] | None:
    """Objects of ``model`` that belong to these organizations, or None when ``model`` belongs
    to no tenant (its admin, if any, is not organization-scoped)."""
    if not admin_site.is_registered(model):
        return None
    related_admin = admin_site.get_model_admin(model)
    if not isinstance(related_admin, OrganizationScopedAdmin):
        return None
    return model._default_manager.filter(
        **{f"{related_admin.organization_path}__in": organization_ids}
    )


class OrganizationScopedAdmin(admin.ModelAdmin):
    organization_path = "organization"
    editing_roles: frozenset[str] = ROLES_EDITING_CONTENT

    def _member_ids(self, request: HttpRequest) -> set[int]:
        return _organization_ids(request, None)

    def _editor_ids(self, request: HttpRequest) -> set[int]:
        return _organization_ids(request, self.editing_roles)

    def _organization_id(self, obj: Model) -> int | None:
        *hops, last = self.organization_path.split("__")
        target: Any = obj
        for hop in hops:
            target = getattr(target, hop, None)
            if target is None:
                return None
        return target.pk if last == "pk" else getattr(target, f"{last}_id", None)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{f"{self.organization_path}__in": self._member_ids(request)})

    def editable_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """``queryset`` without the objects the user may only look at."""
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{f"{self.organization_path}__in": self._editor_ids(request)})

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or bool(self._member_ids(request))

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        if request.user.is_superuser:
            return True
        ids = self._member_ids(request)
        return bool(ids) if obj is None else self._organization_id(obj) in ids

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        if request.user.is_superuser:
            return True
        ids = self._editor_ids(request)
        return bool(ids) if obj is None else self._organization_id(obj) in ids

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return request.user.is_superuser or bool(self._editor_ids(request))

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.has_change_permission(request, obj)

    def get_list_filter(self, request: HttpRequest) -> Any:
        # A plain filter on a relation lists every related object of every tenant (their
        # names, to anyone who opens the list): list only those of the objects shown.
        filters = super().get_list_filter(request)
        if request.user.is_superuser:
            return filters
        return [
            (item, admin.RelatedOnlyFieldListFilter)
            if isinstance(item, str) and get_fields_from_path(self.model, item)[-1].is_relation
            else item
            for item in filters
        ]

    def formfield_for_foreignkey(
        self, db_field: ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField[Any] | None:
        if not request.user.is_superuser:
            choices = _scoped_choices(
                self.admin_site, db_field.related_model, self._editor_ids(request)
            )
            if choices is not None:
                kwargs["queryset"] = choices
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(
        self, db_field: ManyToManyField[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> ModelMultipleChoiceField[Any] | None:
        if not request.user.is_superuser:
            choices = _scoped_choices(
                self.admin_site, db_field.related_model, self._editor_ids(request)
            )
            if choices is not None:
                kwargs["queryset"] = choices
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def response_action(
        self, request: HttpRequest, queryset: QuerySet[Any], *args: Any, **kwargs: Any
    ) -> HttpResponse | None:
        # The list shows objects of organizations the user only looks at, and "select all"
        # picks them too (as would a forged id): actions leave them alone.
        return super().response_action(
            request, self.editable_queryset(request, queryset), *args, **kwargs
        )

    def ensure_editable(self, request: HttpRequest, obj: Model) -> None:
        # The form already limits choices; this refuses a forged POST all the same.
        if request.user.is_superuser:
            return
        if self._organization_id(obj) not in self._editor_ids(request):
            raise PermissionDenied("You can only change objects of your own organizations.")

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        self.ensure_editable(request, obj)
        super().save_model(request, obj, form, change)


class OrganizationScopedInline(InlineModelAdmin):
    """An inline of an :class:`OrganizationScopedAdmin`. Its rows belong to the parent object,
    so whoever may see or change the parent may see or change them (membership, not Django's
    model permissions, which members do not have). The rows themselves are the parent's: the
    formset looks a submitted row id up among them only, so a forged one changes nothing."""

    def _parent_admin(self) -> OrganizationScopedAdmin:
        parent = self.admin_site.get_model_admin(self.parent_model)
        if not isinstance(parent, OrganizationScopedAdmin):
            raise ImproperlyConfigured(
                f"{type(self).__name__} needs an OrganizationScopedAdmin as its parent admin."
            )
        return parent

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._parent_admin().has_view_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._parent_admin().has_change_permission(request, obj)

    # Inlines are asked with the parent object, unlike model admins (Django's stubs say so too).
    def has_add_permission(self, request: HttpRequest, obj: Model | None) -> bool:  # type: ignore[override]
        return self._parent_admin().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._parent_admin().has_change_permission(request, obj)
