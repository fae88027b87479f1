"""The tracking protocol's payloads and their limits, as msgspec structs.

msgspec decodes JSON straight into typed structs and checks every constraint in the same C
pass, several times faster than pydantic v2 and an order of magnitude faster than DRF
serializers, and it yields one precise message per error ("Expected `str` of length <= 2048 -
at `$.url`") that the endpoint passes on to the client.

A batch is decoded in two steps: the envelope first, with each event kept raw, then every event
on its own, so one bad event is rejected with its reason while the others go through.
Documented for integrators in docs/tracking-protocol.md.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import msgspec

MAX_BODY_BYTES = 64 * 1024
MAX_BATCH_EVENTS = 100
MAX_PROPERTIES = 30

Url = Annotated[str, msgspec.Meta(max_length=2048)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Identifier = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
]
Millis = Annotated[int, msgspec.Meta(ge=0, le=10**14)]
PropertyKey = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
PropertyValue = Annotated[str, msgspec.Meta(max_length=500)] | int | float | bool
Properties = Annotated[dict[PropertyKey, PropertyValue], msgspec.Meta(max_length=MAX_PROPERTIES)]


class Consent(msgspec.Struct, frozen=True):
    """What the visitor granted, as the page knows it (the server re-checks it)."""

    analytics: bool = False
    ads: bool = False


class Envelope(msgspec.Struct):
    """A POST /collect body: who sends, and the raw events."""

    site: Identifier
    events: Annotated[list[msgspec.Raw], msgspec.Meta(min_length=1, max_length=MAX_BATCH_EVENTS)]
    bid: Identifier | None = None
    token: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    consent: Consent = Consent()
    app: Identifier | None = None
    sent_at: Millis | None = None


class _Event(msgspec.Struct, tag_field="type", forbid_unknown_fields=False):
    url: Url
    id: uuid.UUID | None = None
    ts: Millis | None = None
    referrer: Url = ""


class Pageview(_Event, tag="pageview"):
    pass


class CustomEvent(_Event, tag="event"):
    name: Name = "event"
    props: Properties = {}


class Engagement(_Event, tag="engagement"):
    visible_ms: Annotated[int, msgspec.Meta(ge=0, le=86_400_000)] = 0
    scroll_depth: Annotated[int, msgspec.Meta(ge=0, le=100)] = 0


class Outbound(_Event, tag="outbound"):
    target: Url = ""


class Download(_Event, tag="download"):
    target: Url = ""


PageEvent = Pageview | CustomEvent | Engagement | Outbound | Download


class AdEvent(msgspec.Struct, tag_field="type"):
    """A POST /ad-event body: one impression, viewable impression or click."""

    site: Identifier
    impression: Identifier
    campaign: Annotated[int, msgspec.Meta(ge=0)]
    ad: Annotated[int, msgspec.Meta(ge=0)]
    placement: Annotated[int, msgspec.Meta(ge=0)] = 0
    creative: Annotated[str, msgspec.Meta(max_length=32)] = ""
    url: Url = ""
    bid: Identifier | None = None
    token: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    consent: Consent = Consent()
    app: Identifier | None = None
    id: uuid.UUID | None = None
    ts: Millis | None = None


class Impression(AdEvent, tag="impression"):
    pass


class Viewable(AdEvent, tag="viewable"):
    pass


class Click(AdEvent, tag="click"):
    pass


class VideoStart(AdEvent, tag="start"):
    pass


class VideoFirstQuartile(AdEvent, tag="firstQuartile"):
    pass


class VideoMidpoint(AdEvent, tag="midpoint"):
    pass


class VideoThirdQuartile(AdEvent, tag="thirdQuartile"):
    pass


class VideoComplete(AdEvent, tag="complete"):
    pass


# Video progress events come from VAST players through the signed tracking URLs (ads.views).
AdEventPayload = (
    Impression
    | Viewable
    | Click
    | VideoStart
    | VideoFirstQuartile
    | VideoMidpoint
    | VideoThirdQuartile
    | VideoComplete
)
VIDEO_EVENTS = ("start", "firstQuartile", "midpoint", "thirdQuartile", "complete")

envelope_decoder = msgspec.json.Decoder(Envelope)
page_event_decoder = msgspec.json.Decoder(PageEvent)
ad_event_decoder = msgspec.json.Decoder(AdEventPayload)


def event_type(event: msgspec.Struct) -> str:
    """The wire name of an event ("pageview", "click", ...): its struct's tag."""
    return str(type(event).__struct_config__.tag)


PurposeKey = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[a-z0-9_-]+$")]
PurposeKeys = Annotated[list[PurposeKey], msgspec.Meta(max_length=32)]


class ConsentDecision(msgspec.Struct):
    """A POST /consent body: a decision the visitor made in the banner."""

    site: Identifier
    version: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
    granted: PurposeKeys
    denied: PurposeKeys
    bid: Identifier | None = None
    tc: Annotated[str, msgspec.Meta(max_length=4096, pattern=r"^[A-Za-z0-9_.-]*$")] = ""
    lang: Annotated[str, msgspec.Meta(max_length=2, pattern=r"^[a-z]*$")] = ""


consent_decision_decoder = msgspec.json.Decoder(ConsentDecision)
