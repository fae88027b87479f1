"""VAST 4.2 documents for video ads.

Used by the VAST endpoint of the ad server in ``ads/`` when a video placement asks for an ad:
``vast_xml`` renders the chosen live ad as one InLine ad, ``empty_vast`` is the "no ad" answer.
Every URL the player calls points back at Naboria - the impression beacon, the click redirect
(which sends the viewer on to the advertiser), the playback events, the viewability beacons and
the error beacon - so impressions, quartiles and clicks are counted once per impression id (the
``AdServingId``).

Standard library only. The element order is the one the official schema requires
(``ads/data/vast_4.2.xsd``), which is not the order of the spec's prose and samples: Error right
after AdSystem, Impression and then ViewableImpression before AdServingId and AdTitle,
TrackingEvents before Duration, and the mandatory UniversalAdId after Linear.

The documents are valid against that schema as served, macro included: the schema types every
URL as xs:anyURI, which libxml2 (lxml, xmllint) checks as an RFC 3986 URI reference, and a
literal ``[ERRORCODE]`` is not one - square brackets may only enclose an IPv6 host. The error
URL therefore carries the macro percent-encoded, ``ERROR_CODE_MACRO``: the form RFC 3986 asks
for, which Google's ad servers put in their own error URLs and many SDKs fill in like the
bracketed one. A player that fills in only brackets (the dailymotion vast-client, for one)
fires the URL with the macro left in, which the error endpoint records as error 900
("undefined error"): the error still counts, without its code.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from ads.delivery import LiveAd

VAST_NAMESPACE = "http://www.iab.com/VAST"
VAST_VERSION = "4.2"

# Events the player reports to us; "progress" is left out, it needs an offset per use.
TRACKED_EVENTS = (
    "start",
    "firstQuartile",
    "midpoint",
    "thirdQuartile",
    "complete",
    "pause",
    "resume",
    "mute",
    "unmute",
    "skip",
)

# The [ERRORCODE] macro of VAST 4.2 section 6.1 with its brackets percent-encoded (see above).
ERROR_CODE_MACRO = "%5BERRORCODE%5D"

# The beacons of <ViewableImpression>, in schema order, as the event names they record. The
# player (or its verification script) decides by the MRC video rule: 50 % of the player's
# pixels in view for 2 continuous seconds.
VIEWABILITY_EVENTS = (
    ("Viewable", "viewable"),
    ("NotViewable", "notViewable"),
    ("ViewUndetermined", "viewUndetermined"),
)

# Adaptive streams are "streaming"; every other file is downloaded progressively over HTTP.
STREAMING_TYPES = frozenset(
    {"application/x-mpegurl", "application/vnd.apple.mpegurl", "application/dash+xml"}
)


def vast_xml(
    *,
    ad: LiveAd,
    impression_id: str,
    impression_url: str,
    click_url: str,
    tracking_url: Callable[[str], str],
    error_url: str,
    ad_system: str = "Naboria",
) -> bytes:
    """The VAST 4.2 InLine document for one video ad.

    ``impression_url`` and ``click_url`` are our signed impression beacon and click redirect,
    ``tracking_url(event)`` our URL for a playback event (TRACKED_EVENTS) or a viewability
    verdict (VIEWABILITY_EVENTS), ``error_url`` our error beacon. URLs are written as given: a
    valid document needs the error URL's macro as ``ERROR_CODE_MACRO``, not in brackets.
    """
    creative = ad.creative
    if creative.kind != "video":
        raise ValueError(f"ad {ad.ad_id} is not a video ad (kind {creative.kind!r})")
    if not creative.media_files:
        raise ValueError(f"video ad {ad.ad_id} has no media files")

    root = _root()
    inline = _add(_add(root, "Ad", id=str(ad.ad_id)), "InLine")
    _add(inline, "AdSystem", ad_system)
    _add(inline, "Error", error_url)
    _add(inline, "Impression", impression_url)
    viewability = _add(inline, "ViewableImpression", id=impression_id)
    for tag, event in VIEWABILITY_EVENTS:
        _add(viewability, tag, tracking_url(event))
    _add(inline, "AdServingId", impression_id)
    _add(inline, "AdTitle", creative.title or f"Ad {ad.ad_id}")
    element = _add(_add(inline, "Creatives"), "Creative", id=str(ad.ad_id), adId=str(ad.ad_id))

    linear = _add(element, "Linear")
    events = _add(linear, "TrackingEvents")
    for event in TRACKED_EVENTS:
        _add(events, "Tracking", tracking_url(event), event=event)
    _add(linear, "Duration", _duration(creative.duration_seconds))
    media_files = _add(linear, "MediaFiles")
    for media in creative.media_files:
        _add(media_files, "MediaFile", media["url"], **_media_attributes(media))
    _add(_add(linear, "VideoClicks"), "ClickThrough", click_url)

    # Required by the schema; we have no registered creative id (Ad-ID etc.), and "unknown"
    # is the value the spec prescribes for that case.
    _add(element, "UniversalAdId", "unknown", idRegistry="unknown")
    return _serialise(root)


def empty_vast(*, error_url: str | None = None) -> bytes:
    """The "no ad" answer: an empty ``<VAST>``, or one holding just our error beacon, which the
    player calls when it gets no ad back (the root may hold Ads or Errors, never both)."""
    root = _root()
    if error_url:
        _add(root, "Error", error_url)
    return _serialise(root)


def _root() -> ET.Element:
    # The namespace is declared by hand: ElementTree's default_namespace option refuses
    # unqualified attributes, and VAST's attributes are all unqualified.
    return ET.Element("VAST", {"xmlns": VAST_NAMESPACE, "version": VAST_VERSION})


def _add(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    element.text = text
    return element


def _duration(seconds: int) -> str:
    """``HH:MM:SS``; the schema types Duration as xs:time, so it must stay under a day."""
    if not 0 < seconds < 24 * 3600:
        raise ValueError(f"video duration out of range: {seconds} s")
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{hour:02d}:{minute:02d}:{second:02d}"


def _media_attributes(media: dict[str, Any]) -> dict[str, str]:
    mime_type = str(media["mime_type"])
    attributes = {
        "delivery": "streaming" if mime_type.lower() in STREAMING_TYPES else "progressive",
        "type": mime_type,
        "width": str(int(media["width"])),
        "height": str(int(media["height"])),
    }
    bitrate = int(media.get("bitrate") or 0)
    if bitrate > 0:  # kbps; unknown (0) is left out rather than claimed
        attributes["bitrate"] = str(bitrate)
    return attributes


def _serialise(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)
