"""Ads admin tenancy: a member sees, chooses and changes only ad objects of their own
organizations, whatever the form offered (forged ids are refused, nothing is saved), and a
campaign never runs on placements of another organization than its advertiser's, in the admin
or outside it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, cast

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.test import Client

from ads.documents import DeliveryAdDocument
from ads.models import (
    Ad,
    Advertiser,
    Campaign,
    CampaignStatus,
    CreativeKind,
    Placement,
    VideoFile,
)
from sites.models import Organization, Role, Site
from sites.services import membership_set
from tests.factories import OrganizationFactory, SiteFactory, UserFactory, campaign_form_data

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_delivery")]
EDITING_ROLES = [Role.OWNER, Role.ADMIN, Role.MARKETER]


@dataclass
class Tenant:
    """An organization with one of each ad object, named after it ("First ad", ...)."""

    organization: Organization
    site: Site
    advertiser: Advertiser
    placement: Placement
    campaign: Campaign
    ad: Ad
    video: Ad
    video_file: VideoFile

    @property
    def names(self) -> list[str]:
        return [
            self.organization.name,
            self.site.name,
            self.advertiser.name,
            self.placement.name,
            self.campaign.name,
            self.ad.name,
            self.video.name,
        ]


def _tenant(label: str) -> Tenant:
    organization = cast(Organization, OrganizationFactory(name=f"{label} Org"))
    site = cast(Site, SiteFactory(organization=organization, name=f"{label} site"))
    advertiser = Advertiser.objects.create(organization=organization, name=f"{label} advertiser")
    placement = Placement.objects.create(site=site, name=f"{label} slot", sizes=["300x250"])
    campaign = Campaign.objects.create(
        advertiser=advertiser, name=f"{label} campaign", status=CampaignStatus.ACTIVE
    )
    campaign.placements.add(placement)
    ad = Ad.objects.create(
        campaign=campaign,
        name=f"{label} ad",
        kind=CreativeKind.IMAGE,
        width=300,
        height=250,
        image_url="https://cdn.example/a.png",
        click_url="https://shop.example/",
    )
    video = Ad.objects.create(
        campaign=campaign,
        name=f"{label} spot",
        kind=CreativeKind.VIDEO,
        title="Spot",
        duration_seconds=15,
        click_url="https://shop.example/video",
    )
    video_file = VideoFile.objects.create(
        ad=video, url="https://cdn.example/spot.mp4", width=640, height=360
    )
    return Tenant(organization, site, advertiser, placement, campaign, ad, video, video_file)


@pytest.fixture
def first() -> Tenant:
    return _tenant("First")


@pytest.fixture
def second() -> Tenant:
    return _tenant("Second")


def _client_for(*memberships: tuple[Organization, str]) -> Client:
    user = UserFactory()
    for organization, role in memberships:
        membership_set(organization=organization, user=user, role=role)
    client = Client()
    client.force_login(user)
    return client


def _options(page: str, name: str) -> set[int]:
    """The values offered by the form's <select name=...>."""
    select = re.search(rf'<select name="{name}"[^>]*>(.*?)</select>', page, re.DOTALL)
    assert select is not None, f"no <select name={name!r}> in the page"
    return {int(value) for value in re.findall(r'<option value="(\d+)"', select.group(1))}


# Valid form data of each model, as its admin posts it (inline management forms included).
def _advertiser_data(organization: Organization, name: str) -> dict[str, Any]:
    return {"organization": organization.pk, "name": name, "website": ""}


def _placement_data(site: Site, name: str) -> dict[str, Any]:
    return {
        "site": site.pk,
        "name": name,
        "sizes": '["300x250"]',
        "formats": "[]",
        "rotation_seconds": 30,
    }


def _ad_data(campaign: Campaign, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "campaign": campaign.pk,
        "name": name,
        "status": "active",
        "kind": "image",
        "click_url": "https://shop.example/",
        "width": 300,
        "height": 250,
        "image_url": "https://cdn.example/a.png",
        "html": "",
        "title": "",
        "text": "",
        "call_to_action": "",
        "duration_seconds": 0,
        "video_files-TOTAL_FORMS": 0,
        "video_files-INITIAL_FORMS": 0,
        **extra,
    }


def _change_data(tenant: Tenant, model: str, name: str) -> tuple[Any, dict[str, Any]]:
    """The tenant's object of ``model`` and a valid change of it that renames it."""
    if model == "advertiser":
        return tenant.advertiser, _advertiser_data(tenant.organization, name)
    if model == "placement":
        return tenant.placement, _placement_data(tenant.site, name)
    if model == "campaign":
        return tenant.campaign, campaign_form_data(tenant.advertiser, [tenant.placement], name)
    return tenant.ad, _ad_data(tenant.campaign, name)


MODELS = ["advertiser", "placement", "campaign", "ad"]


@pytest.mark.parametrize("model", MODELS)
def test_lists_show_nothing_of_another_organization(first, second, model):
    client = _client_for((second.organization, Role.MARKETER))
    page = client.get(f"/admin/ads/{model}/").content.decode()
    own = {
        "advertiser": second.advertiser.name,
        "placement": second.placement.name,
        "campaign": second.campaign.name,
        "ad": second.ad.name,
    }[model]
    assert own in page
    # Rows, list filters (organization, site, advertiser) and search alike.
    assert not [name for name in first.names if name in page]
    searched = client.get(f"/admin/ads/{model}/", {"q": "First"}).content.decode()
    assert not [name for name in first.names if name in searched]


@pytest.mark.parametrize("model", MODELS)
def test_another_organizations_object_cannot_be_opened_changed_or_deleted(first, second, model):
    client = _client_for((second.organization, Role.MARKETER))
    obj, data = _change_data(first, model, "Hijacked")
    url = f"/admin/ads/{model}/{obj.pk}/"
    assert client.get(f"{url}change/").status_code == 302  # admin: "doesn't exist", to index
    assert client.post(f"{url}change/", data).status_code == 302
    assert client.post(f"{url}delete/", {"post": "yes"}).status_code == 302
    obj.refresh_from_db()  # still there, under its name
    assert obj.name.startswith("First")


@pytest.mark.parametrize("role", EDITING_ROLES)
@pytest.mark.parametrize("model", MODELS)
def test_editing_roles_change_their_own_organizations_objects(first, model, role):
    client = _client_for((first.organization, role))
    obj, data = _change_data(first, model, "Renamed")
    response = client.post(f"/admin/ads/{model}/{obj.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    obj.refresh_from_db()
    assert obj.name == "Renamed"


@pytest.mark.parametrize("model", MODELS)
def test_analyst_can_view_but_not_change_add_or_delete(first, model):
    client = _client_for((first.organization, Role.ANALYST))
    obj, data = _change_data(first, model, "Renamed")
    url = f"/admin/ads/{model}/{obj.pk}/"
    assert client.get(f"{url}change/").status_code == 200
    assert client.post(f"{url}change/", data).status_code == 403
    assert client.post(f"{url}delete/", {"post": "yes"}).status_code == 403
    assert client.get(f"/admin/ads/{model}/add/").status_code == 403
    obj.refresh_from_db()
    assert obj.name.startswith("First")


def test_analyst_sees_the_inlines_read_only(first):
    client = _client_for((first.organization, Role.ANALYST))
    campaign = client.get(f"/admin/ads/campaign/{first.campaign.pk}/change/").content.decode()
    assert 'id="ads-group"' in campaign
    assert first.video.name in campaign
    assert 'name="ads-0-name"' not in campaign  # shown, not editable
    ad = client.get(f"/admin/ads/ad/{first.video.pk}/change/").content.decode()
    assert 'id="video_files-group"' in ad
    assert 'name="video_files-0-url"' not in ad


def test_marketer_edits_the_inlines_of_their_own_objects(first):
    client = _client_for((first.organization, Role.MARKETER))
    campaign = client.get(f"/admin/ads/campaign/{first.campaign.pk}/change/").content.decode()
    assert 'name="ads-TOTAL_FORMS"' in campaign
    response = client.post(
        f"/admin/ads/ad/{first.video.pk}/change/",
        _ad_data(
            first.campaign,
            "First spot",
            kind="video",
            title="Spot",
            duration_seconds=15,
            **{
                "video_files-TOTAL_FORMS": 1,
                "video_files-INITIAL_FORMS": 1,
                "video_files-0-id": first.video_file.pk,
                "video_files-0-ad": first.video.pk,
                "video_files-0-url": "https://cdn.example/new.webm",
                "video_files-0-mime_type": "video/webm",
                "video_files-0-width": 1280,
                "video_files-0-height": 720,
                "video_files-0-bitrate": 0,
            },
        ),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    first.video_file.refresh_from_db()
    assert first.video_file.url == "https://cdn.example/new.webm"


def test_forms_offer_only_the_users_organizations_objects(first, second):
    client = _client_for((second.organization, Role.MARKETER))
    campaign = client.get("/admin/ads/campaign/add/").content.decode()
    assert _options(campaign, "advertiser") == {second.advertiser.pk}
    assert _options(campaign, "placements") == {second.placement.pk}
    ad = client.get("/admin/ads/ad/add/").content.decode()
    assert _options(ad, "campaign") == {second.campaign.pk}
    placement = client.get("/admin/ads/placement/add/").content.decode()
    assert _options(placement, "site") == {second.site.pk}
    advertiser = client.get("/admin/ads/advertiser/add/").content.decode()
    assert _options(advertiser, "organization") == {second.organization.pk}


def test_forged_ids_of_another_organization_are_refused(first, second):
    client = _client_for((second.organization, Role.MARKETER))
    forged = [
        ("advertiser", _advertiser_data(first.organization, "Forged")),
        ("placement", _placement_data(first.site, "Forged")),
        ("campaign", campaign_form_data(first.advertiser, [second.placement], "Forged")),
        ("campaign", campaign_form_data(second.advertiser, [first.placement], "Forged")),
        ("ad", _ad_data(first.campaign, "Forged")),
    ]
    for model, data in forged:
        response = client.post(f"/admin/ads/{model}/add/", data)
        assert response.status_code == 200, model  # the form again, with its error
        assert "Select a valid choice" in response.content.decode(), model
    assert not Advertiser.objects.filter(name="Forged").exists()
    assert not Placement.objects.filter(name="Forged").exists()
    assert not Campaign.objects.filter(name="Forged").exists()
    assert not Ad.objects.filter(name="Forged").exists()


def test_own_campaign_cannot_be_moved_onto_another_organizations_placements(first, second):
    client = _client_for((second.organization, Role.MARKETER))
    response = client.post(
        f"/admin/ads/campaign/{second.campaign.pk}/change/",
        campaign_form_data(second.advertiser, [first.placement], "Moved"),
    )
    assert response.status_code == 200
    second.campaign.refresh_from_db()
    assert second.campaign.name == "Second campaign"
    assert list(second.campaign.placements.all()) == [second.placement]
    # Nor their ads onto another organization's campaign.
    response = client.post(
        f"/admin/ads/ad/{second.ad.pk}/change/", _ad_data(first.campaign, "Moved")
    )
    assert response.status_code == 200
    second.ad.refresh_from_db()
    assert (second.ad.campaign, second.ad.name) == (second.campaign, "Second ad")


def test_forged_inline_rows_of_another_organization_change_nothing(first, second):
    client = _client_for((second.organization, Role.MARKETER))
    ad_row = {
        "ads-TOTAL_FORMS": 1,
        "ads-INITIAL_FORMS": 1,
        "ads-0-id": first.ad.pk,
        "ads-0-campaign": second.campaign.pk,
        "ads-0-name": "Hijacked",
        "ads-0-status": "paused",
        "ads-0-kind": "image",
        "ads-0-click_url": "https://evil.example/",
        "ads-0-width": 300,
        "ads-0-height": 250,
        "ads-0-image_url": "https://cdn.example/a.png",
        "ads-0-duration_seconds": 0,
        "ads-0-DELETE": "on",
    }
    client.post(
        f"/admin/ads/campaign/{second.campaign.pk}/change/",
        campaign_form_data(second.advertiser, [second.placement], "Second campaign", **ad_row),
    )
    video_row = {
        "video_files-TOTAL_FORMS": 1,
        "video_files-INITIAL_FORMS": 1,
        "video_files-0-id": first.video_file.pk,
        "video_files-0-ad": second.video.pk,
        "video_files-0-url": "https://evil.example/spot.mp4",
        "video_files-0-mime_type": "video/mp4",
        "video_files-0-width": 640,
        "video_files-0-height": 360,
        "video_files-0-bitrate": 0,
        "video_files-0-DELETE": "on",
    }
    client.post(
        f"/admin/ads/ad/{second.video.pk}/change/",
        _ad_data(
            second.campaign,
            "Second spot",
            kind="video",
            title="Spot",
            duration_seconds=15,
            **video_row,
        ),
    )
    first.ad.refresh_from_db()
    assert (first.ad.campaign, first.ad.name, first.ad.click_url) == (
        first.campaign,
        "First ad",
        "https://shop.example/",
    )
    first.video_file.refresh_from_db()
    assert (first.video_file.ad, first.video_file.url) == (
        first.video,
        "https://cdn.example/spot.mp4",
    )
    assert not Ad.objects.filter(name="Hijacked").exists()


@pytest.mark.parametrize("model", ["campaign", "ad"])
def test_bulk_actions_change_only_the_users_organizations_objects(first, second, model):
    client = _client_for((second.organization, Role.MARKETER))
    targets = {"campaign": (first.campaign, second.campaign), "ad": (first.ad, second.ad)}[model]
    response = client.post(
        f"/admin/ads/{model}/",
        {"action": "pause", "_selected_action": [target.pk for target in targets]},
    )
    assert response.status_code == 302
    foreign, own = (type(target).objects.get(pk=target.pk) for target in targets)
    assert own.status == "paused"
    assert foreign.status == "active"


def test_actions_are_not_offered_to_analysts_nor_run_for_them(first):
    client = _client_for((first.organization, Role.ANALYST))
    page = client.get("/admin/ads/campaign/").content.decode()
    assert first.campaign.name in page
    assert 'value="pause"' not in page
    client.post(
        "/admin/ads/campaign/", {"action": "pause", "_selected_action": [first.campaign.pk]}
    )
    assert Campaign.objects.get(pk=first.campaign.pk).status == CampaignStatus.ACTIVE


def test_select_all_pauses_only_where_the_user_may_edit(first, second):
    # A marketer of the second organization who only looks at the first one's.
    client = _client_for((first.organization, Role.ANALYST), (second.organization, Role.MARKETER))
    page = client.get("/admin/ads/campaign/").content.decode()
    assert first.campaign.name in page
    client.post(
        "/admin/ads/campaign/",
        {"action": "pause", "select_across": "1", "_selected_action": [second.campaign.pk]},
    )
    assert Campaign.objects.get(pk=first.campaign.pk).status == CampaignStatus.ACTIVE
    assert Campaign.objects.get(pk=second.campaign.pk).status == CampaignStatus.PAUSED
    # Their forms offer only what they may edit.
    form = client.get("/admin/ads/campaign/add/").content.decode()
    assert _options(form, "advertiser") == {second.advertiser.pk}


@pytest.mark.parametrize(
    ("model", "field"),
    [("campaign", "advertiser"), ("campaign", "placements"), ("ad", "campaign")],
)
def test_autocomplete_answers_only_the_users_organizations_objects(first, second, model, field):
    client = _client_for((second.organization, Role.MARKETER))
    answer = client.get(
        "/admin/autocomplete/",
        {"app_label": "ads", "model_name": model, "field_name": field, "term": ""},
    )
    assert answer.status_code == 200
    ids = {int(result["id"]) for result in answer.json()["results"]}
    own, foreign = {
        "advertiser": (second.advertiser, first.advertiser),
        "placements": (second.placement, first.placement),
        "campaign": (second.campaign, first.campaign),
    }[field]
    assert own.pk in ids
    assert foreign.pk not in ids


def test_a_member_of_two_organizations_cannot_pair_them_in_a_campaign(first, second):
    client = _client_for((first.organization, Role.MARKETER), (second.organization, Role.MARKETER))
    response = client.post(
        "/admin/ads/campaign/add/",
        campaign_form_data(first.advertiser, [second.placement], "Crossing"),
    )
    assert response.status_code == 200
    assert "placements on sites of the advertiser&#x27;s organization only" in (
        response.content.decode()
    )
    assert not Campaign.objects.filter(name="Crossing").exists()
    # Moving a campaign to the other organization keeps it off the placements it had.
    response = client.post(
        f"/admin/ads/campaign/{first.campaign.pk}/change/",
        campaign_form_data(second.advertiser, [first.placement], "First campaign"),
    )
    assert response.status_code == 200
    assert Campaign.objects.get(pk=first.campaign.pk).advertiser == first.advertiser


def test_a_campaign_linked_across_before_can_be_fixed_by_its_owner(first, second):
    # As the independent check left it: the second organization's campaign on the first's
    # placement, linked around every check.
    Campaign.placements.through.objects.create(
        campaign_id=second.campaign.pk, placement_id=first.placement.pk
    )
    client = _client_for((second.organization, Role.MARKETER))
    page = client.get(f"/admin/ads/campaign/{second.campaign.pk}/change/").content.decode()
    assert first.placement.name not in page
    response = client.post(
        f"/admin/ads/campaign/{second.campaign.pk}/change/",
        campaign_form_data(second.advertiser, [second.placement], "Second campaign"),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert list(second.campaign.placements.all()) == [second.placement]
    # Saving republished its ads, on its own organization's site only.
    (document,) = DeliveryAdDocument.objects(ad_id=second.ad.pk)
    assert document.body["site_ids"] == [second.site.pk]


def test_code_cannot_link_a_campaign_to_another_organizations_placements(first, second):
    # Each in a savepoint: the refusal, like any error, spoils the transaction it happens in.
    with pytest.raises(ValidationError), transaction.atomic():
        second.campaign.placements.add(first.placement)
    with pytest.raises(ValidationError), transaction.atomic():
        first.placement.campaigns.add(second.campaign)
    with pytest.raises(ValidationError), transaction.atomic():
        second.campaign.placements.set([second.placement, first.placement])
    assert list(second.campaign.placements.all()) == [second.placement]
    assert list(first.placement.campaigns.all()) == [first.campaign]


def test_moving_across_organizations_while_linked_is_refused(first, second):
    campaign = Campaign.objects.get(pk=first.campaign.pk)
    campaign.advertiser = second.advertiser
    with pytest.raises(ValidationError) as refused:
        campaign.full_clean()
    assert "advertiser" in refused.value.message_dict
    placement = Placement.objects.get(pk=first.placement.pk)
    placement.site = second.site
    with pytest.raises(ValidationError) as refused:
        placement.full_clean()
    assert "site" in refused.value.message_dict
    advertiser = Advertiser.objects.get(pk=first.advertiser.pk)
    advertiser.organization = second.organization
    with pytest.raises(ValidationError) as refused:
        advertiser.full_clean()
    assert "organization" in refused.value.message_dict
    # Once unlinked, each may move.
    first.campaign.placements.clear()
    campaign.full_clean()
    placement.full_clean()
    advertiser.full_clean()
