"""Sites: secret rotation with grace, token lifecycle, validation of site fields."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from sites.models import PUBLIC_ID_ALPHABET, SiteSecret
from sites.selectors import api_token_for_digest, site_secrets_valid
from sites.services import (
    api_token_create,
    api_token_digest,
    api_token_revoke,
    site_create,
    site_secret_rotate,
    site_secrets_purge_expired,
)

pytestmark = pytest.mark.django_db


def test_site_create_makes_one_current_secret_and_readable_public_id(organization):
    site = site_create(organization=organization, name="Shop", allowed_domains=["shop.example"])
    assert len(site.public_id) == 12
    assert set(site.public_id) <= set(PUBLIC_ID_ALPHABET)
    assert site_secrets_valid(site=site) == [site.secrets.get().secret]


def test_rotation_keeps_the_previous_secret_valid_during_the_grace_period_only(site):
    old = site_secrets_valid(site=site)[0]
    new = site_secret_rotate(site=site, grace_seconds=600).secret
    assert site_secrets_valid(site=site) == [new, old]
    later = timezone.now() + timedelta(seconds=601)
    assert site_secrets_valid(site=site, now=later) == [new]
    assert site_secrets_purge_expired(now=later) == 1
    assert list(SiteSecret.objects.filter(site=site).values_list("secret", flat=True)) == [new]


def test_rotating_twice_leaves_exactly_one_current_secret(site):
    site_secret_rotate(site=site, grace_seconds=60)
    site_secret_rotate(site=site, grace_seconds=60)
    assert SiteSecret.objects.filter(site=site, expires_at__isnull=True).count() == 1
    assert len(site_secrets_valid(site=site)) == 3


@pytest.mark.parametrize(
    "domains",
    [["https://example.com"], ["example.com/path"], ["Example .com"], "example.com", [1]],
)
def test_allowed_domains_reject_anything_but_host_names(organization, domains):
    with pytest.raises(ValidationError):
        site_create(organization=organization, name="Bad", allowed_domains=domains)


def test_allowed_domains_accept_hosts_wildcards_and_ports(organization):
    domains = ["example.com", "*.example.com", "localhost:8000", "127.0.0.1"]
    site = site_create(organization=organization, name="Good", allowed_domains=domains)
    assert site.allowed_domains == domains


def test_timezone_must_be_an_iana_name(organization):
    with pytest.raises(ValidationError, match="IANA"):
        site_create(organization=organization, name="Tz", timezone="Mars/Olympus")


def test_api_token_is_stored_as_digest_and_verifies_until_revoked(organization):
    token, plaintext = api_token_create(organization=organization, name="BI")
    assert plaintext.startswith("nab_")
    assert plaintext not in (token.digest, token.prefix)
    assert api_token_for_digest(digest=api_token_digest(plaintext)) == token
    api_token_revoke(token=token)
    assert api_token_for_digest(digest=api_token_digest(plaintext)) is None


def test_expired_api_token_does_not_verify(organization):
    _, plaintext = api_token_create(
        organization=organization, name="old", expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert api_token_for_digest(digest=api_token_digest(plaintext)) is None
