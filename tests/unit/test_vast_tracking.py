"""What a served VAST document advertises, the server can record: every playback and
viewability beacon names an ad event type, the viewability beacons sit where the schema wants
them, and the error URL's macro keeps the document valid as it is sent."""

from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from lxml import etree  # type: ignore[import-untyped]

from ads.delivery import Creative, LiveAd
from ads.vast import (
    ERROR_CODE_MACRO,
    TRACKED_EVENTS,
    VAST_NAMESPACE,
    VIEWABILITY_EVENTS,
    vast_xml,
)
from events.schemas import AD_EVENT_CLASSES, UNDEFINED_VAST_ERROR, VIDEO_EVENTS, VastError
from ingest.services import ad_row_from_event
from tests.unit.test_event_time import FACTS, SITE

XSD = Path(__file__).resolve().parents[2] / "ads" / "data" / "vast_4.2.xsd"
NS = {"v": VAST_NAMESPACE}
HOST = "https://naboria.example"


@pytest.fixture(scope="module")
def schema():
    return etree.XMLSchema(etree.parse(str(XSD)))


def video_ad() -> LiveAd:
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
        creative=Creative(
            kind="video",
            width=640,
            height=360,
            click_url="https://advertiser.example/",
            title="Spot",
            duration_seconds=15,
            media_files=(
                {
                    "url": "https://cdn.example/a.mp4",
                    "mime_type": "video/mp4",
                    "width": 640,
                    "height": 360,
                },
            ),
        ),
    )


def render(error_url: str) -> bytes:
    return vast_xml(
        ad=video_ad(),
        impression_id="imp1",
        impression_url=f"{HOST}/ads/track?t=impression",
        click_url=f"{HOST}/ads/click?t=click",
        tracking_url=lambda event: f"{HOST}/ads/track?t={event}",
        error_url=error_url,
    )


def test_every_beacon_of_the_document_is_an_ad_event_type() -> None:
    tree = etree.fromstring(render(f"{HOST}/ads/vast-error?t=e&code={ERROR_CODE_MACRO}"))
    named = [
        element.text.rsplit("=", 1)[1]
        for element in tree.iter()
        if "/ads/track?" in (element.text or "")
    ]

    assert set(named) == {
        "impression",
        *TRACKED_EVENTS,
        *(event for _, event in VIEWABILITY_EVENTS),
    }
    assert set(named) <= set(AD_EVENT_CLASSES)
    assert "error" in AD_EVENT_CLASSES
    assert set(VIDEO_EVENTS) == set(TRACKED_EVENTS)


def test_viewability_beacons_follow_the_impression_under_the_impression_id(schema) -> None:
    tree = etree.fromstring(render(f"{HOST}/ads/vast-error?t=e&code={ERROR_CODE_MACRO}"))
    schema.assertValid(tree)

    (inline,) = tree.xpath("//v:InLine", namespaces=NS)
    names = [etree.QName(child).localname for child in inline]
    assert names.index("ViewableImpression") == names.index("Impression") + 1
    (viewability,) = inline.xpath("v:ViewableImpression", namespaces=NS)
    assert viewability.get("id") == "imp1"
    assert [(etree.QName(child).localname, child.text) for child in viewability] == [
        ("Viewable", f"{HOST}/ads/track?t=viewable"),
        ("NotViewable", f"{HOST}/ads/track?t=notViewable"),
        ("ViewUndetermined", f"{HOST}/ads/track?t=viewUndetermined"),
    ]


def test_the_encoded_macro_is_valid_as_sent_and_brackets_are_not(schema) -> None:
    served = etree.fromstring(render(f"{HOST}/ads/vast-error?t=e&code={ERROR_CODE_MACRO}"))
    schema.assertValid(served)
    assert served.xpath("//v:InLine/v:Error", namespaces=NS)[0].text.endswith(
        "&code=%5BERRORCODE%5D"
    )
    # Why the macro is encoded: libxml2 checks xs:anyURI as RFC 3986, with no brackets in a query.
    bracketed = etree.fromstring(render(f"{HOST}/ads/vast-error?t=e&code=[ERRORCODE]"))
    assert not schema.validate(bracketed)
    assert "anyURI" in str(schema.error_log.last_error)


def test_a_vast_error_row_carries_its_code() -> None:
    fields = {"site": "s", "impression": "i", "campaign": 1, "ad": 2}
    rows = {
        code: msgspec.json.decode(
            ad_row_from_event(event=event, site=SITE, visitor_id="v", facts=FACTS)[1]
        )
        for code, event in (
            (405, VastError(**fields, code=405)),
            (UNDEFINED_VAST_ERROR, VastError(**fields)),  # a player that sent no code
        )
    }
    assert {code: row["error_code"] for code, row in rows.items()} == {405: 405, 900: 900}
    impression = AD_EVENT_CLASSES["impression"](**fields)
    _, row = ad_row_from_event(event=impression, site=SITE, visitor_id="v", facts=FACTS)
    assert "error_code" not in msgspec.json.decode(row)  # 0: left to the column's default
