"""VAST 4.2 documents for video ads.

Used by the VAST endpoint of the ad server in ``ads/`` when a video placement asks for an ad:
``vast_xml`` renders a live ad with video files of its own as one InLine ad,
``vast_wrapper_xml`` one that plays a third party's VAST tag as one Wrapper ad, ``empty_vast``
is the "no ad" answer. Every URL the player calls for us points back at Naboria - the
impression beacon, the click redirect (which sends the viewer on to the advertiser) or, in a
wrapper, the click tracking beacon, the playback events, the viewability beacons and the error
beacon - so impressions, quartiles and clicks are counted once per impression id (the
``AdServingId`` of an InLine, the ``ViewableImpression`` id of both). A wrapper's player also
fetches the third party's tag and calls its beacons: that is why the VAST endpoint serves
wrappers only to viewers with ads consent.

Standard library only. The element order is the one the official schema requires
(``ads/data/vast_4.2.xsd``), which is not the order of the spec's prose and samples: Error right
after AdSystem, Impression and then ViewableImpression before AdServingId and AdTitle,
TrackingEvents before Duration, and the mandatory UniversalAdId after Linear; in a Wrapper,
Creatives before VASTAdTagURI, which comes last.

The documents are valid against that schema as served, macro included: the schema types every
URL as xs:anyURI, which libxml2 (lxml, xmllint) checks as an RFC 3986 URI reference, and a
literal ``[ERRORCODE]`` is not one - square brackets may only enclose an IPv6 host. The error
URL therefore carries the macro percent-encoded, ``ERROR_CODE_MACRO``: the form RFC 3986 asks
for, which Google's ad servers put in their own error URLs and many SDKs fill in like the
bracketed one. A player that fills in only brackets (the dailymotion vast-client, for one)
fires the URL with the macro left in, which the error endpoint records as error 900
("undefined error"): the error still counts, without its code. A third party's tag URL is
written the same way (``tag_uri``): its macros (``[CACHEBUSTING]``) percent-encoded, as is any
other character a URI may not hold.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from ads.delivery import LiveAd
from events.schemas import VIDEO_EVENTS

VAST_NAMESPACE = "http://www.iab.com/VAST"
VAST_VERSION = "4.2"

# Events the player reports to us (each an ad event type of events.schemas); "progress" is
# left out, it needs an offset per use.
TRACKED_EVENTS = VIDEO_EVENTS

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
    """The VAST 4.2 InLine document for one video ad with media files of its own.

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
    _add_beacons(
        inline,
        ad_system=ad_system,
        impression_id=impression_id,
        impression_url=impression_url,
        tracking_url=tracking_url,
        error_url=error_url,
    )
    _add(inline, "AdServingId", impression_id)
    _add(inline, "AdTitle", creative.title or f"Ad {ad.ad_id}")
    element, linear = _add_linear_creative(inline, ad=ad, tracking_url=tracking_url)
    _add(linear, "Duration", _duration(creative.duration_seconds))
    media_files = _add(linear, "MediaFiles")
    for media in creative.media_files:
        _add(media_files, "MediaFile", media["url"], **_media_attributes(media))
    _add(_add(linear, "VideoClicks"), "ClickThrough", click_url)

    # Required by the schema; we have no registered creative id (Ad-ID etc.), and "unknown"
    # is the value the spec prescribes for that case.
    _add(element, "UniversalAdId", "unknown", idRegistry="unknown")
    return _serialise(root)


def vast_wrapper_xml(
    *,
    ad: LiveAd,
    impression_id: str,
    impression_url: str,
    click_tracking_url: str,
    tracking_url: Callable[[str], str],
    error_url: str,
    ad_system: str = "Naboria",
) -> bytes:
    """The VAST 4.2 Wrapper document for one video ad that plays a third party's VAST tag.

    The player fetches the tag (``VASTAdTagURI``) and plays its ad, calling our beacons as
    well as the third party's: the same impression, playback, viewability and error URLs as
    ``vast_xml``'s. The click-through is the third party's, so ours is ``click_tracking_url``,
    a beacon the player calls on a click (``ClickTracking``), not a redirect.
    """
    creative = ad.creative
    if not creative.is_wrapper:
        raise ValueError(f"ad {ad.ad_id} is not a video ad with a VAST tag URL")

    root = _root()
    # Tags often answer with a wrapper of their own (an ad server passing the ad on); one
    # ad is asked for, not a pod.
    wrapper = _add(
        _add(root, "Ad", id=str(ad.ad_id)),
        "Wrapper",
        followAdditionalWrappers="true",
        allowMultipleAds="false",
    )
    _add_beacons(
        wrapper,
        ad_system=ad_system,
        impression_id=impression_id,
        impression_url=impression_url,
        tracking_url=tracking_url,
        error_url=error_url,
    )
    _, linear = _add_linear_creative(wrapper, ad=ad, tracking_url=tracking_url)
    _add(_add(linear, "VideoClicks"), "ClickTracking", click_tracking_url)
    _add(wrapper, "VASTAdTagURI", tag_uri(creative.vast_tag_url))
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


def _add_beacons(
    parent: ET.Element,
    *,
    ad_system: str,
    impression_id: str,
    impression_url: str,
    tracking_url: Callable[[str], str],
    error_url: str,
) -> None:
    """What InLine and Wrapper ads begin with, in schema order: AdSystem, Error, Impression and
    ViewableImpression."""
    _add(parent, "AdSystem", ad_system)
    _add(parent, "Error", error_url)
    _add(parent, "Impression", impression_url)
    viewability = _add(parent, "ViewableImpression", id=impression_id)
    for tag, event in VIEWABILITY_EVENTS:
        _add(viewability, tag, tracking_url(event))


def _add_linear_creative(
    parent: ET.Element, *, ad: LiveAd, tracking_url: Callable[[str], str]
) -> tuple[ET.Element, ET.Element]:
    """The ad's one Creative, holding a Linear that begins with our TrackingEvents: (Creative,
    Linear), for the caller to complete."""
    creative = _add(_add(parent, "Creatives"), "Creative", id=str(ad.ad_id), adId=str(ad.ad_id))
    linear = _add(creative, "Linear")
    events = _add(linear, "TrackingEvents")
    for event in TRACKED_EVENTS:
        _add(events, "Tracking", tracking_url(event), event=event)
    return creative, linear


# A "%" that does not start a percent-encoding (RFC 3986 section 2.1).
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# What a path, query or fragment may hold besides letters, digits and "-._~" (RFC 3986
# section 3.3 to 3.5), "%" of the percent-encodings kept as they are.
_URI_COMPONENT_SAFE = "!$&'()*+,;=:@/?%"


def tag_uri(url: str) -> str:
    """A third party's tag URL as an RFC 3986 URI, which the schema's xs:anyURI requires:
    everything after the host that a URI may not hold percent-encoded - the brackets of its
    macros (``[CACHEBUSTING]``), a stray "%", a second "#", spaces or other characters. The
    host is left alone (an IPv6 one keeps its brackets)."""
    parts = urlsplit(url)

    def encoded(component: str) -> str:
        return quote(_STRAY_PERCENT.sub("%25", component), safe=_URI_COMPONENT_SAFE)

    return urlunsplit(
        (
            parts.scheme,
            parts.netloc,
            encoded(parts.path),
            encoded(parts.query),
            encoded(parts.fragment),
        )
    )


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
