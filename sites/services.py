"""Writes for the sites app: organizations, memberships, sites, site secrets and API tokens.

Views, admin and commands call these instead of touching models directly, so the rules live in
one place (a site always has a current secret; a member can log into the admin; token
plaintext is never stored). Creating a site sends sites.signals.site_created, by which the
apps above (consent: the default banner) attach their part.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from sites.models import ApiToken, Membership, Organization, Role, Site, SiteSecret
from sites.signals import site_created

API_TOKEN_PREFIX = "nab_"  # noqa: S105 (a public marker, not a secret)


def organization_create(*, name: str, slug: str = "") -> Organization:
    organization = Organization(name=name, slug=slug or slugify(name))
    organization.full_clean()
    organization.save()
    return organization


def membership_set(*, organization: Organization, user: Any, role: Role | str) -> Membership:
    """Give ``user`` the ``role`` in ``organization``, creating or updating the membership."""
    with transaction.atomic():
        membership, _ = Membership.objects.update_or_create(
            user=user, organization=organization, defaults={"role": role}
        )
        # Members work in the admin; which objects they see there is decided by membership.
        if not user.is_staff:
            user.is_staff = True
            user.save(update_fields=["is_staff"])
    return membership


def site_create(*, organization: Organization, name: str, **fields: Any) -> Site:
    with transaction.atomic():
        site = Site(organization=organization, name=name, **fields)
        site.full_clean()
        site.save()
        SiteSecret.objects.create(site=site)
        site_created.send(sender=Site, site=site)  # consent gives it its banner
    return site


def site_secret_rotate(*, site: Site, grace_seconds: int | None = None) -> SiteSecret:
    """Make a new current secret; the previous one keeps verifying for the grace period."""
    grace = timedelta(
        seconds=settings.SITE_SECRET_GRACE_SECONDS if grace_seconds is None else grace_seconds
    )
    with transaction.atomic():
        current = (
            SiteSecret.objects.select_for_update()
            .filter(site=site, expires_at__isnull=True)
            .first()
        )
        if current is not None:
            current.expires_at = timezone.now() + grace
            current.save(update_fields=["expires_at"])
        return SiteSecret.objects.create(site=site)


def site_secrets_purge_expired(*, now: datetime | None = None) -> int:
    deleted, _ = SiteSecret.objects.filter(expires_at__lte=now or timezone.now()).delete()
    return deleted


def api_token_digest(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def api_token_create(
    *,
    organization: Organization,
    name: str,
    created_by: Any = None,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Create a token and return it with its plaintext, which is never stored."""
    plaintext = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        organization=organization,
        name=name,
        prefix=plaintext[:12],
        digest=api_token_digest(plaintext),
        created_by=created_by,
        expires_at=expires_at,
    )
    return token, plaintext


def api_token_revoke(*, token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])


def api_token_mark_used(*, token: ApiToken) -> None:
    # One write a minute at most: a busy client must not turn every read into a write.
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
