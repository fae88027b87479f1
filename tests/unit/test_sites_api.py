"""REST API scoping: a caller reads its own organization's sites and nothing else."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from sites.models import Role
from sites.services import api_token_create, membership_set
from tests.factories import OrganizationFactory, SiteFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_tenants():
    first, second = OrganizationFactory(), OrganizationFactory()
    return first, SiteFactory(organization=first), second, SiteFactory(organization=second)


def test_token_lists_only_its_organizations_sites(two_tenants):
    first, first_site, _, _ = two_tenants
    _, plaintext = api_token_create(organization=first, name="reader")
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    response = client.get("/api/v1/sites/")
    assert response.status_code == 200
    assert [row["public_id"] for row in response.json()["results"]] == [first_site.public_id]


def test_token_cannot_read_another_organizations_site(two_tenants):
    first, _, _, second_site = two_tenants
    _, plaintext = api_token_create(organization=first, name="reader")
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert client.get(f"/api/v1/sites/{second_site.public_id}/").status_code == 404


def test_bad_token_gets_401_with_a_message():
    client = APIClient(HTTP_AUTHORIZATION="Bearer nab_not-a-token")
    response = client.get("/api/v1/sites/")
    assert response.status_code == 401
    assert "API token" in response.json()["detail"]


def test_anonymous_caller_is_refused():
    assert APIClient().get("/api/v1/sites/").status_code in {401, 403}


def test_session_user_reads_sites_of_their_memberships(two_tenants, user):
    first, first_site, _, _ = two_tenants
    membership_set(organization=first, user=user, role=Role.ANALYST)
    client = APIClient()
    client.force_login(user)
    rows = client.get("/api/v1/sites/").json()["results"]
    assert [row["public_id"] for row in rows] == [first_site.public_id]
