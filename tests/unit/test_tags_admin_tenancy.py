"""Tag manager admin tenancy: a member lists, opens, adds and acts on tags of their own
organizations' sites only; the purposes offered are their own banners'; a forged site or a
purpose of another organization's banner is refused and nothing is saved."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from consent.models import ConsentPurpose
from consent.services import consent_banner_ensure
from sites.models import Role
from sites.services import membership_set
from tags.models import Tag
from tags.services import tag_create
from tests.factories import OrganizationFactory, SiteFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenants():
    """Two organizations, each with a site, its banner (the other's with a purpose of its own)
    and a tag."""
    made = []
    for name in ("Own", "Other"):
        organization = OrganizationFactory(name=f"{name} Org")
        site = SiteFactory(
            organization=organization, name=f"{name} site", consent_banner_enabled=True
        )
        banner = consent_banner_ensure(site=site)
        if name == "Other":
            ConsentPurpose.objects.create(
                banner=banner, key="secretchat", name="Other's secret chat"
            )
        tag = tag_create(
            site=site, name=f"{name} pixel", template="pixel", purposes=["ads"], url="/p.gif"
        )
        made += [organization, site, tag]
    return made


def client_for(organization, role=Role.MARKETER) -> Client:
    user = UserFactory()
    membership_set(organization=organization, user=user, role=role)
    client = Client()
    client.force_login(user)
    return client


def form_data(site, **overrides) -> dict:
    data = {
        "site": site.pk,
        "name": "New GA",
        "template": "ga4",
        "purposes": ["analytics"],
        "enabled": "on",
        "order": 0,
        "tracking_id": "G-2X7ABC9DEF",
        "cookies": "[]",
    }
    data.update(overrides)
    return data


def test_members_list_and_open_only_their_organizations_tags(tenants):
    own, _, own_tag, _, _, other_tag = tenants
    client = client_for(own, Role.ANALYST)
    page = client.get("/admin/tags/tag/").content.decode()
    assert "Own pixel" in page
    assert "Other pixel" not in page
    assert "Other site" not in page  # not even in the site filter
    assert client.get(f"/admin/tags/tag/{own_tag.pk}/change/").status_code == 200
    form = client_for(own).get(f"/admin/tags/tag/{own_tag.pk}/change/").content.decode()
    assert re.findall(r'name="purposes" value="(\w+)"[^>]*checked', form) == ["ads"]
    assert client.get(f"/admin/tags/tag/{other_tag.pk}/change/").status_code == 302


def test_the_add_form_offers_only_own_sites_and_purposes(tenants):
    own, own_site, _, _, _, _ = tenants
    form = client_for(own).get("/admin/tags/tag/add/").content.decode()
    assert re.findall(r'<option value="(\d+)"', form) == [str(own_site.pk)]
    offered = re.findall(r'name="purposes" value="([^"]+)"', form)
    assert offered == ["necessary", "analytics", "ads"]
    assert "secretchat" not in form
    assert "Other&#x27;s secret chat" not in form


def test_a_marketer_adds_a_tag_to_their_own_site(tenants):
    own, own_site, _, _, _, _ = tenants
    response = client_for(own).post("/admin/tags/tag/add/", form_data(own_site))
    assert response.status_code == 302
    tag = Tag.objects.get(name="New GA")
    assert (tag.site, tag.purposes, tag.tracking_id) == (own_site, ["analytics"], "G-2X7ABC9DEF")


def test_saving_a_tag_of_a_site_whose_banner_is_off_says_it_is_not_served(tenants):
    own, own_site, _, _, _, _ = tenants
    own_site.consent_banner_enabled = False
    own_site.save()
    response = client_for(own).post("/admin/tags/tag/add/", form_data(own_site), follow=True)
    assert "its tags are not served until it is on" in response.content.decode()
    assert Tag.objects.filter(name="New GA").exists()


def test_forged_sites_and_purposes_are_refused(tenants):
    own, own_site, _, _, other_site, _ = tenants
    client = client_for(own)
    forged_site = client.post("/admin/tags/tag/add/", form_data(other_site))
    assert forged_site.status_code == 200  # shown again with an error
    forged_purpose = client.post(
        "/admin/tags/tag/add/", form_data(own_site, purposes=["secretchat"])
    )
    assert forged_purpose.status_code == 200
    assert "secretchat is not one of the available choices" in forged_purpose.content.decode()
    assert not Tag.objects.filter(name="New GA").exists()


def test_a_purpose_of_another_site_of_ones_own_is_refused_by_the_model(tenants):
    own, own_site, _, _, _, _ = tenants
    second = SiteFactory(organization=own, name="Own second site", consent_banner_enabled=True)
    ConsentPurpose.objects.create(
        banner=consent_banner_ensure(site=second), key="chat", name="Chat"
    )
    response = client_for(own).post("/admin/tags/tag/add/", form_data(own_site, purposes=["chat"]))
    assert "not purposes of this site&#x27;s banner: chat" in response.content.decode()
    assert not Tag.objects.filter(name="New GA").exists()


def test_analysts_cannot_change_and_actions_leave_other_organizations_alone(tenants):
    own, own_site, own_tag, _, _, other_tag = tenants
    analyst = client_for(own, Role.ANALYST)
    response = analyst.post(f"/admin/tags/tag/{own_tag.pk}/change/", form_data(own_site))
    assert response.status_code == 403
    marketer = client_for(own)
    response = marketer.post(
        "/admin/tags/tag/",
        {"action": "disable_tags", "_selected_action": [own_tag.pk, other_tag.pk]},
    )
    assert response.status_code == 302
    own_tag.refresh_from_db()
    other_tag.refresh_from_db()
    assert (own_tag.enabled, other_tag.enabled) == (False, True)


def test_a_key_removed_from_the_banner_stays_shown_and_is_refused(tenants):
    own, own_site, own_tag, _, _, _ = tenants
    ConsentPurpose.objects.filter(banner__site=own_site, key="ads").delete()
    client = client_for(own)
    form = client.get(f"/admin/tags/tag/{own_tag.pk}/change/").content.decode()
    assert "ads: (not in the banner)" in form
    data = form_data(own_site, template="pixel", tracking_id="", url="/p.gif", purposes=["ads"])
    response = client.post(f"/admin/tags/tag/{own_tag.pk}/change/", data)
    assert "not purposes of this site&#x27;s banner: ads" in response.content.decode()
