"""Video ads authored by marketers (members, not superusers) in the admin: one with a video file
of its own (the ad's video files inline) and one wrapping a third party's VAST tag (an ad
inline in its campaign), each then served by the VAST endpoint; and what the forms and the
models say when a video ad is set up wrong."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from lxml import etree  # type: ignore[import-untyped]

from ads import snapshot
from ads.models import Ad, Campaign, CreativeKind, VideoFile
from ads.publishing import placements_publish
from sites.models import Role
from tests.factories import campaign_form_data
from tests.tracking_client import TrackingClient
from tests.unit.test_ads_admin_tenancy import (
    Tenant,
    _ad_data,
    _client_for,
    _tenant,
)

pytestmark = [pytest.mark.mongodb, pytest.mark.django_db, pytest.mark.usefixtures("empty_delivery")]
NS = {"v": "http://www.iab.com/VAST"}
TAG = "https://ads.third.example/vast?id=7"
MEDIA = "https://cdn.example/own.mp4"


@pytest.fixture
def first() -> Tenant:
    """An organization with a site, placement, campaign and ads (none of them published)."""
    return _tenant("First")


@pytest.fixture
def marketer(first: Tenant) -> Client:
    return _client_for((first.organization, Role.MARKETER))


@pytest.fixture
def video_slot(first: Tenant) -> str:
    """The tenant's placement, taking video ads only; its key."""
    first.placement.formats = ["video"]
    first.placement.save()
    placements_publish(placements=[first.placement])
    return str(first.placement.key)


def _video_ad_data(campaign: Campaign, name: str, **extra: Any) -> dict[str, Any]:
    """An ad of the ad's own page: a video with one MP4 file (the video files inline)."""
    fields = {
        "kind": "video",
        "click_url": "https://shop.example/video",
        "width": 0,
        "height": 0,
        "image_url": "",
        "title": "Own spot",
        "duration_seconds": 15,
        "video_files-TOTAL_FORMS": 1,
        "video_files-INITIAL_FORMS": 0,
        "video_files-0-url": MEDIA,
        "video_files-0-mime_type": "video/mp4",
        "video_files-0-width": 1280,
        "video_files-0-height": 720,
        "video_files-0-bitrate": 2500,
    }
    return _ad_data(campaign, name, **{**fields, **extra})


def _wrapper_row(name: str, **extra: Any) -> dict[str, Any]:
    """A campaign page's ad inline: a video ad that wraps the third party's tag."""
    row = {
        "name": name,
        "status": "active",
        "kind": "video",
        "click_url": "",
        "width": 0,
        "height": 0,
        "image_url": "",
        "html": "",
        "title": "",
        "text": "",
        "call_to_action": "",
        "duration_seconds": 0,
        "vast_tag_url": TAG,
        **extra,
    }
    return {
        "ads-TOTAL_FORMS": 1,
        "ads-INITIAL_FORMS": 0,
        **{f"ads-0-{field}": value for field, value in row.items()},
    }


def _served(ads_client: TrackingClient, key: str, query: str = "") -> Any:
    snapshot.load()  # what the admin just published
    answer = ads_client.get(f"/ads/vast?placement={key}{query}")
    assert answer.status_code == 200, answer.content
    return etree.fromstring(answer.content)


def _saved(response: Any) -> None:
    assert response.status_code == 302, response.content.decode()[:3000]


def test_a_marketer_authors_a_video_ad_with_its_own_file_and_it_is_served(
    first, marketer, video_slot, ads_client
):
    _saved(marketer.post("/admin/ads/ad/add/", _video_ad_data(first.campaign, "Own spot")))
    ad = Ad.objects.get(name="Own spot")
    assert list(ad.video_files.values_list("url", flat=True)) == [MEDIA]

    tree = _served(ads_client, video_slot)
    assert tree.xpath("/v:VAST/v:Ad/@id", namespaces=NS) == [str(ad.pk)]
    assert tree.findtext(".//v:InLine/v:AdTitle", namespaces=NS) == "Own spot"
    assert tree.findtext(".//v:MediaFile", namespaces=NS) == MEDIA


def test_a_marketer_authors_a_wrapper_in_a_campaign_and_it_is_served_with_consent(
    first, marketer, video_slot, ads_client
):
    _saved(marketer.post("/admin/ads/ad/add/", _video_ad_data(first.campaign, "Own spot")))
    # A campaign of its own, above the other: with consent its wrapper always wins.
    _saved(
        marketer.post(
            "/admin/ads/campaign/add/",
            campaign_form_data(
                first.advertiser, [first.placement], "Partner", priority=9, **_wrapper_row("Tag")
            ),
        )
    )
    wrapper = Ad.objects.get(name="Tag")
    assert (wrapper.campaign.name, wrapper.vast_tag_url, wrapper.click_url) == ("Partner", TAG, "")

    tree = _served(ads_client, video_slot, "&ads=1")  # the site's own CMP: consent is claimed
    assert tree.xpath("/v:VAST/v:Ad/@id", namespaces=NS) == [str(wrapper.pk)]
    assert tree.findtext(".//v:Wrapper/v:VASTAdTagURI", namespaces=NS) == TAG
    # Without ads consent the player gets the ad with a file of its own instead.
    tree = _served(ads_client, video_slot)
    assert tree.findtext(".//v:InLine/v:AdTitle", namespaces=NS) == "Own spot"


def test_the_ad_page_shows_a_wrapper_and_its_tag(first, marketer):
    wrapper = Ad.objects.create(
        campaign=first.campaign, name="Tag", kind=CreativeKind.VIDEO, vast_tag_url=TAG
    )
    page = marketer.get(f"/admin/ads/ad/{wrapper.pk}/change/").content.decode()
    assert 'name="vast_tag_url"' in page
    assert f"players play the VAST of <code>{TAG}</code>" in page
    campaign = marketer.get(f"/admin/ads/campaign/{first.campaign.pk}/change/").content.decode()
    assert 'name="ads-0-vast_tag_url"' in campaign


def _errors(response: Any) -> str:
    assert response.status_code == 200  # the form again, with what to fix
    return response.content.decode().replace("&#x27;", "'")


def test_a_wrapper_with_video_files_is_refused_in_the_form(first, marketer):
    page = _errors(
        marketer.post(
            "/admin/ads/ad/add/",
            _video_ad_data(first.campaign, "Both", vast_tag_url=TAG, click_url=""),
        )
    )
    assert "A wrapper ad (with a VAST tag URL) plays the third party's VAST, not video" in page
    assert not Ad.objects.filter(name="Both").exists()


def test_a_hosted_video_becomes_a_wrapper_once_its_files_are_deleted(first, marketer):
    video, file = first.video, first.video_file
    existing = {
        "video_files-INITIAL_FORMS": 1,
        "video_files-0-id": file.pk,
        "video_files-0-ad": video.pk,
    }
    change = f"/admin/ads/ad/{video.pk}/change/"
    page = _errors(
        marketer.post(
            change,
            _video_ad_data(first.campaign, video.name, vast_tag_url=TAG, click_url="", **existing),
        )
    )
    assert "This ad plays video files of its own: delete them and save" in page
    _saved(
        marketer.post(
            change,
            _video_ad_data(
                first.campaign, video.name, **existing, **{"video_files-0-DELETE": "on"}
            ),
        )
    )
    assert not VideoFile.objects.filter(ad=video).exists()
    _saved(
        marketer.post(
            change,
            _video_ad_data(
                first.campaign,
                video.name,
                vast_tag_url=TAG,
                click_url="",
                **{"video_files-TOTAL_FORMS": 0},
            ),
        )
    )
    video.refresh_from_db()
    assert video.is_wrapper


def _refused(ad: Ad) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as refused:
        ad.full_clean()
    return refused.value.message_dict


@pytest.mark.parametrize(
    "tag",
    [
        "http://ads.example/vast",
        "ads.example/vast",
        "/vast?id=1",
        "https://",
        "ftp://ads.example/v",
    ],
)
def test_a_tag_url_must_be_an_absolute_https_address(first, tag):
    ad = Ad(campaign=first.campaign, name="Tag", kind=CreativeKind.VIDEO, vast_tag_url=tag)
    assert _refused(ad) == {
        "vast_tag_url": [
            "A VAST tag URL is the third party's absolute https:// address of its VAST, "
            "e.g. https://ads.example/vast?id=42."
        ]
    }


def test_only_video_ads_wrap_a_tag_and_a_wrapper_has_no_click_url(first):
    image = Ad(
        campaign=first.campaign,
        name="Banner",
        kind=CreativeKind.IMAGE,
        width=300,
        height=250,
        image_url="https://cdn.example/a.png",
        click_url="https://shop.example/",
        vast_tag_url=TAG,
    )
    assert _refused(image) == {"vast_tag_url": ["Only a video ad has a VAST tag URL."]}
    clicked = Ad(
        campaign=first.campaign,
        name="Tag",
        kind=CreativeKind.VIDEO,
        vast_tag_url=TAG,
        click_url="https://shop.example/",
    )
    assert _refused(clicked) == {
        "click_url": [
            "A wrapper ad has no click URL: clicks go where the third party's VAST sends "
            "them. Leave it empty."
        ]
    }


def test_a_video_ad_needs_its_title_duration_and_click_url_unless_it_wraps_a_tag(first):
    hosted = Ad(campaign=first.campaign, name="Spot", kind=CreativeKind.VIDEO)
    assert _refused(hosted) == {
        "click_url": ["A video (VAST 4.2) ad needs a click URL."],
        "title": ["A video (VAST 4.2) ad needs a title."],
        "duration_seconds": ["A video (VAST 4.2) ad needs a duration."],
    }
    Ad(campaign=first.campaign, name="Tag", kind=CreativeKind.VIDEO, vast_tag_url=TAG).full_clean()
    banner = Ad(
        campaign=first.campaign,
        name="Banner",
        kind=CreativeKind.IMAGE,
        width=300,
        height=250,
        image_url="https://cdn.example/a.png",
    )
    assert _refused(banner) == {"click_url": ["A image banner ad needs a click URL."]}


def test_a_wrapper_gets_no_video_files_in_code_either(first):
    wrapper = Ad.objects.create(
        campaign=first.campaign, name="Tag", kind=CreativeKind.VIDEO, vast_tag_url=TAG
    )
    video = VideoFile(ad=wrapper, url=MEDIA, width=640, height=360)
    with pytest.raises(ValidationError, match="plays the third party's VAST, not video files"):
        video.full_clean()
