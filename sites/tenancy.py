"""Organization scoping for Django admin, shared by every app whose objects belong to a tenant.

A staff user who is not a superuser sees only objects of the organizations they are a member
of, and changes them only with a role allowed to: marketers edit content, owners and admins
also manage members and tokens, analysts only look. Subclass :class:`OrganizationScopedAdmin`
and set ``organization_path`` to the lookup from the model to its Organization.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import ForeignKey, Model, QuerySet
from django.forms import ModelChoiceField
from django.http import HttpRequest

from sites.models import ROLES_EDITING_CONTENT, Organization, Site
from sites.selectors import organization_ids_for_user


class OrganizationScopedAdmin(admin.ModelAdmin):
    organization_path = "organization"
    editing_roles: frozenset[str] = ROLES_EDITING_CONTENT

    def _member_ids(self, request: HttpRequest) -> set[int]:
        cached = getattr(request, "_naboria_member_org_ids", None)
        if cached is None:
            cached = organization_ids_for_user(user=request.user)
            request._naboria_member_org_ids = cached  # type: ignore[attr-defined]
        return cached

    def _editor_ids(self, request: HttpRequest) -> set[int]:
        return organization_ids_for_user(user=request.user, roles=self.editing_roles)

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

    def formfield_for_foreignkey(
        self, db_field: ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField[Any] | None:
        if not request.user.is_superuser:
            editable = self._editor_ids(request)
            if db_field.related_model is Organization:
                kwargs["queryset"] = Organization.objects.filter(id__in=editable)
            elif db_field.related_model is Site:
                kwargs["queryset"] = Site.objects.filter(organization_id__in=editable)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def ensure_editable(self, request: HttpRequest, obj: Model) -> None:
        # The form already limits choices; this refuses a forged POST all the same.
        if request.user.is_superuser:
            return
        if self._organization_id(obj) not in self._editor_ids(request):
            raise PermissionDenied("You can only change objects of your own organizations.")

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        self.ensure_editable(request, obj)
        super().save_model(request, obj, form, change)
