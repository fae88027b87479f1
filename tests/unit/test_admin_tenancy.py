"""Admin tenancy: members see and change only their own organization's objects."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from sites.models import ApiToken, Role, Site
from sites.services import membership_set
from tests.factories import OrganizationFactory, SiteFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenants():
    own, other = OrganizationFactory(name="Own Org"), OrganizationFactory(name="Other Org")
    return (
        own,
        SiteFactory(organization=own, name="Own site"),
        other,
        SiteFactory(organization=other, name="Other site"),
    )


def _client_for(organization, role) -> Client:
    user = UserFactory()
    membership_set(organization=organization, user=user, role=role)
    client = Client()
    client.force_login(user)
    return client


def test_marketer_lists_only_their_organizations_sites(tenants):
    own, _, _, _ = tenants
    client = _client_for(own, Role.MARKETER)
    page = client.get("/admin/sites/site/").content.decode()
    assert "Own site" in page
    assert "Other site" not in page


def test_marketer_cannot_open_another_organizations_site(tenants):
    own, _, _, other_site = tenants
    client = _client_for(own, Role.MARKETER)
    response = client.get(f"/admin/sites/site/{other_site.pk}/change/")
    assert response.status_code == 302  # admin redirects a missing object to the index
    assert Site.objects.get(pk=other_site.pk).name == "Other site"


def test_marketer_can_only_choose_their_own_organization_when_adding(tenants):
    own, _, other, _ = tenants
    client = _client_for(own, Role.MARKETER)
    form = client.get("/admin/sites/site/add/").content.decode()
    options = re.findall(r'<option value="(\d+)"', form)
    assert options == [str(own.pk)]
    response = client.post(
        "/admin/sites/site/add/",
        {
            "organization": other.pk,
            "name": "Sneaky",
            "allowed_domains": '["x.example"]',
            "timezone": "UTC",
            "retention_days": 30,
            "secrets-TOTAL_FORMS": 0,
            "secrets-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 200  # the form is shown again with an error
    assert not Site.objects.filter(name="Sneaky").exists()


def test_marketer_adds_a_site_which_gets_a_current_secret(tenants):
    own, _, _, _ = tenants
    client = _client_for(own, Role.MARKETER)
    response = client.post(
        "/admin/sites/site/add/",
        {
            "organization": own.pk,
            "name": "New shop",
            "allowed_domains": '["shop.example"]',
            "timezone": "Europe/Paris",
            "retention_days": 90,
            "analytics_enabled": "on",
            "secrets-TOTAL_FORMS": 0,
            "secrets-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 302
    site = Site.objects.get(name="New shop")
    assert site.secrets.filter(expires_at__isnull=True).count() == 1


def test_analyst_can_view_but_not_change(tenants):
    own, own_site, _, _ = tenants
    client = _client_for(own, Role.ANALYST)
    assert client.get(f"/admin/sites/site/{own_site.pk}/change/").status_code == 200
    response = client.post(
        f"/admin/sites/site/{own_site.pk}/change/",
        {"organization": own.pk, "name": "Renamed", "timezone": "UTC", "retention_days": 1},
    )
    assert response.status_code == 403
    assert Site.objects.get(pk=own_site.pk).name == "Own site"


def test_marketer_cannot_manage_tokens_but_owner_can(tenants):
    own, _, _, _ = tenants
    marketer = _client_for(own, Role.MARKETER)
    assert marketer.get("/admin/sites/apitoken/add/").status_code == 403
    owner = _client_for(own, Role.OWNER)
    response = owner.post(
        "/admin/sites/apitoken/add/", {"organization": own.pk, "name": "BI"}, follow=True
    )
    assert response.status_code == 200
    token = ApiToken.objects.get(name="BI")
    shown = re.search(r"nab_[A-Za-z0-9_-]+", response.content.decode())
    assert shown is not None
    assert shown.group(0).startswith(token.prefix)


def test_staff_without_membership_sees_no_tenant_objects(tenants):
    user = UserFactory(is_staff=True)
    client = Client()
    client.force_login(user)
    assert client.get("/admin/sites/site/").status_code == 403


def test_superuser_sees_every_organization(tenants):
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    page = client.get("/admin/sites/site/").content.decode()
    assert "Own site" in page
    assert "Other site" in page


def test_an_analyst_is_offered_no_site_or_token_actions(tenants):
    own, own_site, _, _ = tenants
    analyst = _client_for(own, Role.ANALYST)
    page = analyst.get("/admin/sites/site/").content.decode()
    assert "Own site" in page
    assert "rotate_secret" not in page
    secrets_before = own_site.secrets.count()
    response = analyst.post(
        "/admin/sites/site/", {"action": "rotate_secret", "_selected_action": [own_site.pk]}
    )
    assert response.status_code in {200, 302}
    assert own_site.secrets.count() == secrets_before  # no secret was rotated
    owner = _client_for(own, Role.OWNER)
    assert "rotate_secret" in owner.get("/admin/sites/site/").content.decode()


def test_owners_see_their_members_inline_and_other_members_look(tenants):
    own, _, other, _ = tenants
    owner = _client_for(own, Role.OWNER)
    page = owner.get(f"/admin/sites/organization/{own.pk}/change/").content.decode()
    assert 'name="memberships-0-role"' in page
    marketer = _client_for(own, Role.MARKETER)
    page = marketer.get(f"/admin/sites/organization/{own.pk}/change/").content.decode()
    assert "Membership" in page
    assert 'name="memberships-0-role"' not in page  # shown read-only
    assert owner.get(f"/admin/sites/organization/{other.pk}/change/").status_code == 302
