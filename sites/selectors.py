"""Reads for the sites app: who belongs where, which secrets verify, which token is whose."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db.models import F, Q, QuerySet
from django.utils import timezone

from sites.models import ApiToken, Membership, Organization, Site, SiteSecret


def organization_ids_for_user(*, user: Any, roles: Iterable[str] | None = None) -> set[int]:
    """Ids of the organizations ``user`` belongs to, optionally only with one of ``roles``."""
    if not user.is_authenticated:
        return set()
    memberships = Membership.objects.filter(user=user)
    if roles is not None:
        memberships = memberships.filter(role__in=list(roles))
    return set(memberships.values_list("organization_id", flat=True))


def organizations_for_user(*, user: Any) -> QuerySet[Organization]:
    if user.is_superuser:
        return Organization.objects.all()
    return Organization.objects.filter(id__in=organization_ids_for_user(user=user))


def sites_for_organization(*, organization: Organization) -> QuerySet[Site]:
    return Site.objects.filter(organization=organization)


def sites_readable_by(*, principal: Any) -> QuerySet[Site]:
    """Sites an API caller may read: its token's organization, or its user's memberships."""
    organization = getattr(principal, "organization", None)
    if organization is not None:
        return Site.objects.filter(organization=organization)
    if getattr(principal, "is_superuser", False):
        return Site.objects.all()
    return Site.objects.filter(organization_id__in=organization_ids_for_user(user=principal))


def site_get_by_public_id(*, public_id: str) -> Site | None:
    return Site.objects.filter(public_id=public_id).first()


def site_secrets_valid(*, site: Site, now: datetime | None = None) -> list[str]:
    """Secrets that verify tokens right now, the current one first."""
    moment = now or timezone.now()
    secrets = SiteSecret.objects.filter(site=site).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=moment)
    )
    return [
        secret.secret
        for secret in secrets.order_by(F("expires_at").asc(nulls_first=True), "-created_at")
    ]


def api_token_for_digest(*, digest: str) -> ApiToken | None:
    token = ApiToken.objects.select_related("organization").filter(digest=digest).first()
    return token if token is not None and token.is_active else None


DEMO_ORGANIZATION_SLUG = "demo"


def site_for_demo(*, public_id: str | None) -> Site | None:
    """The site a demo page embeds: the one asked for, else the seeded demo site."""
    if public_id:
        return Site.objects.filter(public_id=public_id).first()
    return Site.objects.filter(organization__slug=DEMO_ORGANIZATION_SLUG).order_by("id").first()


def site_names_by_public_id(*, public_ids: Iterable[str]) -> dict[str, str]:
    """The names of the sites with these public ids (an operator's view: every organization)."""
    return dict(
        Site.objects.filter(public_id__in=list(public_ids)).values_list("public_id", "name")
    )
