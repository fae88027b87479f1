"""Tenancy: organizations, their members and roles, their sites, site secrets and API tokens.

Everything a customer owns hangs off an Organization; admin and API scope by it.
"""

from __future__ import annotations

import re
import secrets
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.timezone import now

PUBLIC_ID_ALPHABET = "abcdefghijkmnopqrstuvwxyz23456789"  # no l/1/0 to read aloud safely


def new_public_id() -> str:
    return "".join(secrets.choice(PUBLIC_ID_ALPHABET) for _ in range(12))


def new_site_secret() -> str:
    return secrets.token_urlsafe(32)


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone such as Europe/Paris.")


HOST_PATTERN = re.compile(r"^(\*\.)?([a-z0-9-]+\.)*[a-z0-9-]+(:\d{1,5})?$")


def validate_domains(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError('Enter a list of host names, e.g. ["example.com", "*.example.com"].')
    for domain in value:
        if not HOST_PATTERN.match(domain):
            raise ValidationError(
                f"{domain!r} is not a host name: give the lower-case host (and optional :port) "
                "without scheme or path, e.g. example.com or *.example.com."
            )


def host_allowed(*, host: str, port: int | None, domains: list[str] | tuple[str, ...]) -> bool:
    """Whether ``host`` (and ``port``, when given) is one of ``domains`` (validate_domains):
    ``example.com`` is that host on any port, ``*.example.com`` it and its subdomains, and a
    domain with a port (``example.com:8443``) that port only. Shared by the tracking endpoints'
    origin check and the cookie scan's URL check."""
    host = host.lower().rstrip(".")
    for domain in domains:
        name, _, wanted_port = domain.partition(":")
        if wanted_port and port is not None and int(wanted_port) != port:
            continue
        if name.startswith("*."):
            if host == name[2:] or host.endswith(name[1:]):
                return True
        elif host == name:
            return True
    return False


class Organization(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    created_at = models.DateTimeField(default=now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MARKETER = "marketer", "Marketer"
    ANALYST = "analyst", "Analyst"


# Who may change what inside their organization (superusers may change everything).
ROLES_MANAGING_MEMBERS = frozenset({Role.OWNER, Role.ADMIN})
ROLES_EDITING_CONTENT = frozenset({Role.OWNER, Role.ADMIN, Role.MARKETER})


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANALYST)
    created_at = models.DateTimeField(default=now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="one_membership_per_org")
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.get_role_display()}) in {self.organization}"


class Site(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="sites")
    name = models.CharField(max_length=200)
    public_id = models.CharField(
        max_length=32,
        unique=True,
        default=new_public_id,
        editable=False,
        help_text="Identifies the site in the tracker tag and the API.",
    )
    allowed_domains = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_domains],
        help_text='Host names allowed to send events, e.g. ["example.com", "*.example.com"].',
    )
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    retention_days = models.PositiveIntegerField(
        default=395,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text="Raw events older than this are deleted from ClickHouse.",
    )
    # Feature switches: what the served tracker does for this site.
    analytics_enabled = models.BooleanField(default=True)
    ads_enabled = models.BooleanField(default=True)
    consent_banner_enabled = models.BooleanField(default=True)
    track_outbound_links = models.BooleanField(default=True)
    track_file_downloads = models.BooleanField(default=True)
    track_engagement = models.BooleanField(default=True)
    respect_do_not_track = models.BooleanField(
        default=True, help_text="Honour Global Privacy Control and Do-Not-Track signals."
    )
    recommendations_enabled = models.BooleanField(
        default=False,
        help_text="Serve the recommendations module: popular pages the visitor has not seen "
        "(docs/recommendations.md).",
    )
    created_at = models.DateTimeField(default=now, editable=False)

    class Meta:
        ordering = ["organization__name", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.public_id})"


class SiteSecret(models.Model):
    """Key material for the HMAC tokens of a site's visitors.

    The current secret has no ``expires_at``; a rotation stamps the previous one with the end
    of its grace period, during which tokens signed with either key verify.
    """

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="secrets")
    secret = models.CharField(max_length=128, default=new_site_secret, editable=False)
    created_at = models.DateTimeField(default=now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["site"],
                condition=models.Q(expires_at__isnull=True),
                name="one_current_secret_per_site",
            )
        ]

    def __str__(self) -> str:
        state = (
            "current" if self.expires_at is None else f"expires {self.expires_at:%Y-%m-%d %H:%M}"
        )
        return f"secret of {self.site.name} ({state})"


class ApiToken(models.Model):
    """A bearer token for REST clients, scoped to one organization.

    Only a SHA-256 digest of the token is stored; the plaintext is shown once at creation.
    Tokens carry 256 bits of randomness, so a fast digest is enough (no password stretching).
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What uses this token, e.g. 'BI export'.")
    prefix = models.CharField(max_length=16, editable=False, db_index=True)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now())
