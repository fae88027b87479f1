"""VAST 4.2 documents of video ads, InLine and Wrapper: valid against the official schema, and
saying what we mean.

Error URLs carry the ``[ERRORCODE]`` macro, which must keep its brackets for players to replace
it; libxml2's xs:anyURI check rejects brackets, so documents are validated the way a player
calls them - macro filled in (``valid_tree``) - and once verbatim with a macro-free error URL.
"""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree  # type: ignore[import-untyped]

from ads.delivery import Creative, LiveAd
from ads.vast import (
    TRACKED_EVENTS,
    VAST_NAMESPACE,
    VIEWABILITY_EVENTS,
    empty_vast,
    tag_uri,
    vast_wrapper_xml,
    vast_xml,
)

XSD = Path(__file__).resolve().parents[2] / "ads" / "data" / "vast_4.2.xsd"
NS = {"v": VAST_NAMESPACE}

IMPRESSION_ID = "0b8e6c1e-3f4a-4b6e-9a61-2c1d5e7f9a10"
IMPRESSION_URL = "https://naboria.example/a/i?imp=0b8e6c1e&ad=42&sig=abc"
CLICK_URL = "https://naboria.example/a/c?imp=0b8e6c1e&ad=42&sig=def"
ERROR_URL = "https://naboria.example/a/e?imp=0b8e6c1e&code=[ERRORCODE]&sig=ghi"
PLAIN_ERROR_URL = "https://naboria.example/a/e?imp=0b8e6c1e&sig=ghi"

MEDIA_FILES = (
    {
        "url": "https://cdn.example/v/42-720.mp4?v=2&t=1",
        "mime_type": "video/mp4",
        "width": 1280,
        "height": 720,
        "bitrate": 2500,
    },
    {
        "url": "https://cdn.example/v/42-360.webm",
        "mime_type": "video/webm",
        "width": 640,
        "height": 360,
        "bitrate": 0,
    },
)


@pytest.fixture(scope="module")
def schema():
    return etree.XMLSchema(etree.parse(str(XSD)))


def video_ad(**creative_changes) -> LiveAd:
    creative = {
        "kind": "video",
        "width": 1280,
        "height": 720,
        "click_url": "https://advertiser.example/landing?utm_source=naboria&utm_medium=video",
        "title": "Spring sale",
        "duration_seconds": 95,
        "media_files": MEDIA_FILES,
        **creative_changes,
    }
    return LiveAd(
        ad_id=42,
        campaign_id=7,
        advertiser_id=3,
        organization_id=1,
        site_ids=frozenset({1}),
        priority=1,
        weight=1,
        starts_at=datetime(2026, 1, 1, tzinfo=UTC),
        ends_at=None,
        creative=Creative(**creative),
    )


def tracking_url(event: str) -> str:
    return f"https://naboria.example/a/t?imp=0b8e6c1e&event={event}&sig=x{len(event)}"


def render(ad: LiveAd | None = None, error_url: str = ERROR_URL) -> bytes:
    return vast_xml(
        ad=ad or video_ad(),
        impression_id=IMPRESSION_ID,
        impression_url=IMPRESSION_URL,
        click_url=CLICK_URL,
        tracking_url=tracking_url,
        error_url=error_url,
    )


def parse(document: bytes):
    return etree.fromstring(document)


def valid_tree(schema, document: bytes):
    """Assert the document is valid as the player uses it - [ERRORCODE] replaced by a code -
    and return it as it was sent."""
    fired = parse(document)
    for error in fired.xpath("//v:Error", namespaces=NS):
        error.text = error.text.replace("[ERRORCODE]", "405")
    schema.assertValid(fired)
    return parse(document)


def texts(tree, path: str) -> list[str]:
    return [element.text for element in tree.xpath(path, namespaces=NS)]


def test_a_video_ad_validates_against_the_schema(schema) -> None:
    schema.assertValid(parse(render(error_url=PLAIN_ERROR_URL)))
    valid_tree(schema, render())


def test_the_error_code_macro_is_kept_for_the_player_to_fill_in(schema) -> None:
    document = render()
    tree = valid_tree(schema, document)

    assert texts(tree, "//v:InLine/v:Error") == [ERROR_URL]
    assert b"&amp;code=[ERRORCODE]&amp;" in document
    assert b"%5B" not in document


@pytest.mark.parametrize("bitrate", [0, None, "absent"])
def test_media_files_without_a_bitrate_validate_and_leave_it_out(schema, bitrate) -> None:
    media = dict(MEDIA_FILES[1])
    if bitrate == "absent":
        del media["bitrate"]
    else:
        media["bitrate"] = bitrate
    tree = valid_tree(schema, render(video_ad(media_files=(MEDIA_FILES[0], media))))

    files = tree.xpath("//v:MediaFiles/v:MediaFile", namespaces=NS)
    assert files[0].get("bitrate") == "2500"
    assert "bitrate" not in files[1].attrib


def test_the_document_is_utf8_vast_42_in_the_vast_namespace() -> None:
    document = render(video_ad(title="Été à Zürich"))
    tree = parse(document)

    assert document.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert "Été à Zürich".encode() in document
    assert tree.tag == f"{{{VAST_NAMESPACE}}}VAST"
    assert tree.get("version") == "4.2"


def test_a_title_with_markup_characters_is_escaped(schema) -> None:
    title = "Tom & Jerry <b>\"50% off\"</b> 'today'"
    document = render(video_ad(title=title))
    tree = valid_tree(schema, document)

    assert texts(tree, "//v:InLine/v:AdTitle") == [title]
    assert b"Tom &amp; Jerry &lt;b&gt;" in document


def test_urls_with_query_strings_are_escaped_and_come_back_unchanged(schema) -> None:
    document = render()
    tree = valid_tree(schema, document)

    assert b"?imp=0b8e6c1e&amp;ad=42&amp;sig=abc" in document
    assert b"&ad=" not in document
    assert texts(tree, "//v:InLine/v:Impression") == [IMPRESSION_URL]
    assert texts(tree, "//v:VideoClicks/v:ClickThrough") == [CLICK_URL]
    assert texts(tree, "//v:InLine/v:Error") == [ERROR_URL]
    assert texts(tree, "//v:MediaFile")[0] == MEDIA_FILES[0]["url"]


def test_the_ad_is_identified_and_its_impression_id_is_the_ad_serving_id() -> None:
    tree = parse(render())

    ad = tree.xpath("/v:VAST/v:Ad", namespaces=NS)
    assert [element.get("id") for element in ad] == ["42"]
    assert texts(tree, "//v:InLine/v:AdSystem") == ["Naboria"]
    assert texts(tree, "//v:InLine/v:AdServingId") == [IMPRESSION_ID]
    assert texts(tree, "//v:InLine/v:AdTitle") == ["Spring sale"]
    (creative,) = tree.xpath("//v:Creatives/v:Creative", namespaces=NS)
    assert (creative.get("id"), creative.get("adId")) == ("42", "42")
    (universal,) = creative.xpath("v:UniversalAdId", namespaces=NS)
    assert (universal.get("idRegistry"), universal.text) == ("unknown", "unknown")


def test_the_click_through_is_our_redirect_not_the_advertiser() -> None:
    tree = parse(render())

    assert texts(tree, "//v:VideoClicks/*") == [CLICK_URL]
    assert b"advertiser.example" not in render()


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(95, "00:01:35"), (5, "00:00:05"), (60, "00:01:00"), (3725, "01:02:05")],
)
def test_duration_is_hh_mm_ss(schema, seconds, expected) -> None:
    tree = valid_tree(schema, render(video_ad(duration_seconds=seconds)))

    assert texts(tree, "//v:Linear/v:Duration") == [expected]


def test_one_tracking_element_per_event_with_the_url_we_were_given() -> None:
    tree = parse(render())

    tracking = tree.xpath("//v:Linear/v:TrackingEvents/v:Tracking", namespaces=NS)
    events = [element.get("event") for element in tracking]
    assert events == list(TRACKED_EVENTS)
    assert len(set(events)) == len(events)
    assert {"start", "firstQuartile", "midpoint", "thirdQuartile", "complete"} <= set(events)
    for element in tracking:
        assert element.text == tracking_url(element.get("event"))


def test_media_file_attributes() -> None:
    tree = parse(render())

    files = tree.xpath("//v:MediaFiles/v:MediaFile", namespaces=NS)
    assert [dict(element.attrib) for element in files] == [
        {
            "delivery": "progressive",
            "type": "video/mp4",
            "width": "1280",
            "height": "720",
            "bitrate": "2500",
        },
        {"delivery": "progressive", "type": "video/webm", "width": "640", "height": "360"},
    ]
    assert [element.text for element in files] == [media["url"] for media in MEDIA_FILES]


def test_an_adaptive_stream_is_delivered_as_streaming(schema) -> None:
    hls = {
        "url": "https://cdn.example/v/42/master.m3u8",
        "mime_type": "application/x-mpegURL",
        "width": 1920,
        "height": 1080,
    }
    tree = valid_tree(schema, render(video_ad(media_files=(hls,))))

    (media,) = tree.xpath("//v:MediaFile", namespaces=NS)
    assert media.get("delivery") == "streaming"


def test_the_ad_system_can_be_named() -> None:
    document = vast_xml(
        ad=video_ad(),
        impression_id=IMPRESSION_ID,
        impression_url=IMPRESSION_URL,
        click_url=CLICK_URL,
        tracking_url=tracking_url,
        error_url=ERROR_URL,
        ad_system="Naboria staging",
    )
    assert texts(parse(document), "//v:AdSystem") == ["Naboria staging"]


def test_no_ad_answer_without_an_error_url(schema) -> None:
    document = empty_vast()
    tree = parse(document)

    schema.assertValid(tree)  # nothing to fill in: valid as sent
    assert document.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert tree.tag == f"{{{VAST_NAMESPACE}}}VAST"
    assert tree.get("version") == "4.2"
    assert len(tree) == 0


def test_no_ad_answer_with_an_error_url(schema) -> None:
    document = empty_vast(error_url=ERROR_URL)
    tree = valid_tree(schema, document)

    schema.assertValid(parse(empty_vast(error_url=PLAIN_ERROR_URL)))
    assert texts(tree, "/v:VAST/*") == [ERROR_URL]
    assert [child.tag for child in tree] == [f"{{{VAST_NAMESPACE}}}Error"]
    assert b"&amp;code=[ERRORCODE]&amp;" in document


@pytest.mark.parametrize(
    "path",
    [
        "//v:InLine/v:Impression",
        "//v:InLine/v:AdSystem",
        "//v:InLine/v:AdServingId",
        "//v:InLine/v:AdTitle",
        "//v:Creative/v:UniversalAdId",
        "//v:Linear/v:Duration",
        "//v:Linear/v:MediaFiles",
    ],
)
def test_a_document_missing_a_required_element_fails_validation(schema, path) -> None:
    tree = parse(render(error_url=PLAIN_ERROR_URL))
    schema.assertValid(tree)
    (element,) = tree.xpath(path, namespaces=NS)
    element.getparent().remove(element)

    assert not schema.validate(tree)
    with pytest.raises(etree.DocumentInvalid):
        schema.assertValid(tree)


def test_elements_out_of_schema_order_fail_validation(schema) -> None:
    tree = parse(render(error_url=PLAIN_ERROR_URL))
    (inline,) = tree.xpath("//v:InLine", namespaces=NS)
    (title,) = inline.xpath("v:AdTitle", namespaces=NS)
    inline.remove(title)
    inline.insert(0, title)  # before AdSystem

    assert not schema.validate(tree)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "image"}, "not a video ad"),
        ({"media_files": ()}, "no media files"),
        ({"duration_seconds": 0}, "duration out of range"),
        ({"duration_seconds": 24 * 3600}, "duration out of range"),
    ],
)
def test_ads_that_cannot_make_a_valid_document_are_refused(changes, message) -> None:
    with pytest.raises(ValueError, match=message):
        render(video_ad(**changes))


TAG_URL = "https://ads.third.example/vast?id=42&cb=[CACHEBUSTING]"
CLICK_TRACKING_URL = "https://naboria.example/a/t?imp=0b8e6c1e&event=click&sig=ct"


def wrapper_ad(tag: str = TAG_URL) -> LiveAd:
    return video_ad(click_url="", title="", duration_seconds=0, media_files=(), vast_tag_url=tag)


def render_wrapper(ad: LiveAd | None = None) -> bytes:
    return vast_wrapper_xml(
        ad=ad or wrapper_ad(),
        impression_id=IMPRESSION_ID,
        impression_url=IMPRESSION_URL,
        click_tracking_url=CLICK_TRACKING_URL,
        tracking_url=tracking_url,
        error_url=PLAIN_ERROR_URL,
    )


def test_a_wrapper_validates_against_the_schema_its_tag_macros_included(schema) -> None:
    tree = parse(render_wrapper())
    schema.assertValid(tree)

    # The macro's brackets are percent-encoded, as the error URL's are: valid as sent.
    assert texts(tree, "//v:Wrapper/v:VASTAdTagURI") == [
        "https://ads.third.example/vast?id=42&cb=%5BCACHEBUSTING%5D"
    ]


def test_a_wrapper_carries_our_beacons_and_points_to_the_tag() -> None:
    tree = parse(render_wrapper())

    (wrapper,) = tree.xpath("/v:VAST/v:Ad[@id='42']/v:Wrapper", namespaces=NS)
    assert (wrapper.get("followAdditionalWrappers"), wrapper.get("allowMultipleAds")) == (
        "true",
        "false",
    )
    assert [etree.QName(child).localname for child in wrapper] == [
        "AdSystem",
        "Error",
        "Impression",
        "ViewableImpression",
        "Creatives",
        "VASTAdTagURI",
    ]
    assert texts(tree, "//v:Wrapper/v:Error") == [PLAIN_ERROR_URL]
    assert texts(tree, "//v:Wrapper/v:Impression") == [IMPRESSION_URL]
    assert tree.xpath("//v:ViewableImpression/@id", namespaces=NS) == [IMPRESSION_ID]
    assert texts(tree, "//v:ViewableImpression/*") == [
        tracking_url(event) for _, event in VIEWABILITY_EVENTS
    ]
    tracking = tree.xpath("//v:Linear/v:TrackingEvents/v:Tracking", namespaces=NS)
    assert [(element.get("event"), element.text) for element in tracking] == [
        (event, tracking_url(event)) for event in TRACKED_EVENTS
    ]
    # The click-through is the third party's: ours only tracks the click.
    assert texts(tree, "//v:Linear/v:VideoClicks/*") == [CLICK_TRACKING_URL]
    assert tree.xpath("//v:VideoClicks/v:ClickTracking", namespaces=NS)
    assert not tree.xpath("//v:MediaFiles | //v:Duration | //v:AdTitle", namespaces=NS)


@pytest.mark.parametrize(
    ("tag", "served"),
    [
        ("https://ads.example/vast?id=1", "https://ads.example/vast?id=1"),
        ("https://ads.example/v?cb=[CACHEBUSTING]", "https://ads.example/v?cb=%5BCACHEBUSTING%5D"),
        ("https://ads.example/v?cb=%5BTIMESTAMP%5D", "https://ads.example/v?cb=%5BTIMESTAMP%5D"),
        ("https://ads.example/v?rate=100%", "https://ads.example/v?rate=100%25"),
        ("https://ads.example/v#a#b", "https://ads.example/v#a%23b"),
        ("https://ads.example/été?q=a b", "https://ads.example/%C3%A9t%C3%A9?q=a%20b"),
        ("https://[2001:db8::1]:8443/v?x=[Y]", "https://[2001:db8::1]:8443/v?x=%5BY%5D"),
    ],
)
def test_any_tag_url_is_served_as_a_valid_uri(schema, tag, served) -> None:
    assert tag_uri(tag) == served
    schema.assertValid(parse(render_wrapper(wrapper_ad(tag))))


def test_a_wrapper_document_needs_a_video_ad_with_a_tag() -> None:
    with pytest.raises(ValueError, match="not a video ad with a VAST tag URL"):
        render_wrapper(video_ad())
    with pytest.raises(ValueError, match="not a video ad with a VAST tag URL"):
        render_wrapper(video_ad(kind="image", vast_tag_url=TAG_URL))
