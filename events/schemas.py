"""The tracking protocol's payloads and their limits, as msgspec structs.

msgspec decodes JSON straight into typed structs and checks every constraint in the same C
pass, several times faster than pydantic v2 and an order of magnitude faster than DRF
serializers, and it yields one precise message per error ("Expected `str` of length <= 2048 -
at `$.url`") that the endpoint passes on to the client.

A batch is decoded in two steps: the envelope first, with each event kept raw, then every event
on its own, so one bad event is rejected with its reason while the others go through.

msgspec alone would let three kinds of bad input through as something other than a
``msgspec.DecodeError``, which the endpoints answer with a 400: invalid UTF-8 in a string
(``UnicodeDecodeError``), nesting deeper than Python's recursion limit (``RecursionError``), and
URLs that ingest then fails to split (``ValueError``); and it accepts invalid UTF-8 in the parts
it skips (unknown fields, the raw events of an envelope). ``JsonDecoder`` checks all of them, so
decoding fails only with a ``msgspec.DecodeError`` saying what is wrong. Every number has a
range (the ad ids that of the Django ``BigAutoField`` they name), so no column wraps it.
Documented for integrators in docs/tracking-protocol.md ("Limits and malformed input").
"""

from __future__ import annotations

import typing
import uuid
from typing import Annotated, Any, Generic, Literal, TypeVar
from urllib.parse import urlsplit

import msgspec

MAX_BODY_BYTES = 64 * 1024
MAX_BATCH_EVENTS = 100
MAX_PROPERTIES = 30
# The protocol nests four levels (envelope, events, event, props); anything deeper is not an
# event, and refusing it keeps msgspec far from the recursion limit it shares with Python.
MAX_DEPTH = 32

Url = Annotated[str, msgspec.Meta(max_length=2048)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Identifier = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
]
Millis = Annotated[int, msgspec.Meta(ge=0, le=10**14)]
# Campaigns, ads and placements are Django BigAutoField rows (signed 64-bit, never negative).
AdId = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
PropertyKey = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
PropertyValue = (
    Annotated[str, msgspec.Meta(max_length=500)]
    | Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
    | float
    | bool
)
Properties = Annotated[dict[PropertyKey, PropertyValue], msgspec.Meta(max_length=MAX_PROPERTIES)]


T = TypeVar("T")

# Every byte but those that give JSON its structure, and a table turning brackets into braces.
_NOT_STRUCTURE = bytes(byte for byte in range(256) if byte not in b'"[]{}')
_BRACES = bytes.maketrans(b"[]", b"{}")
_fields_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
# As ints, because ``int in bytes`` is a memchr while ``bytes in bytes`` first tries (and fails)
# to read its operand as an int, which costs five times as much.
_OPEN, _CLOSE, _BACKSLASH, _BRACE, _QUOTE = b'[]\\{"'


def _nested_within(data: bytes, limit: int) -> bool:
    """Whether no array or object in ``data`` (JSON, or whatever is left if it is malformed)
    opens deeper than ``limit`` levels. Only whole-bytes operations, which run at C speed (a
    loop over the characters in Python would cost more than decoding them): ~3 µs for a
    20-event batch."""
    if _BACKSLASH in data:
        # Escaped backslashes first, then escaped quotes: every quote left opens or closes a
        # string, and brackets inside strings do not nest.
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    # Quotes and brackets, the brackets as braces.
    structure = data.translate(_BRACES, _NOT_STRUCTURE)
    if structure.count(_BRACE) <= limit:
        return True  # fewer brackets than levels allowed
    # Dropping two adjacent quotes (an empty string, or the end of one and the start of the
    # next) changes for no other byte whether it is inside a string; what is between the
    # quotes left is.
    structure = structure.replace(b'""', b"")
    if _QUOTE in structure:
        structure = b"".join(structure.split(b'"')[::2])
    # Each pass removes the innermost pairs, one level. Brackets left unpaired (malformed JSON)
    # may open as many levels again before msgspec finds the error.
    for depth in range(limit + 1):
        inner_removed = structure.replace(b"{}", b"")
        if inner_removed == structure:
            return depth + structure.count(_BRACE) <= limit
        structure = inner_removed
    return False


def _is_utf8(data: bytes | msgspec.Raw) -> bool:
    try:
        str(data, "utf-8")
    except UnicodeDecodeError:
        return False
    return True


class JsonDecoder(Generic[T]):
    """A msgspec JSON decoder whose ``decode`` fails only with ``msgspec.DecodeError`` (or its
    subclass ``ValidationError``) saying what is wrong, whatever the bytes: too deep nesting
    and invalid UTF-8 anywhere are refused before msgspec sees them, and the ``url_fields``
    must be URLs that ingest can split (host, path, referrer source).

    ``raw_field`` names a field whose items stay raw (an envelope's events): invalid UTF-8
    inside one of them is left to the decoder of that item, which refuses that item alone. A
    raw item is only checked for UTF-8: it was cut out of a payload whose nesting was checked
    as a whole.
    """

    __slots__ = ("_decoder", "_raw_field", "_url_fields")

    def __init__(
        self, type_: Any, *, raw_field: str | None = None, url_fields: tuple[str, ...] = ()
    ) -> None:
        self._decoder: msgspec.json.Decoder[T] = msgspec.json.Decoder(type_)
        self._raw_field = raw_field
        self._url_fields = url_fields

    def decode(self, data: bytes | msgspec.Raw) -> T:
        if isinstance(data, msgspec.Raw):
            data = bytes(data)  # ~0.1 µs for an event; the checks need bytes
        elif not _nested_within(data, MAX_DEPTH):
            raise msgspec.DecodeError(f"JSON nested deeper than {MAX_DEPTH} levels")
        plain = data.isascii()  # then it is UTF-8, too
        if not plain:
            try:
                data.decode()
            except UnicodeDecodeError as error:
                self._refuse_invalid_utf8(data, error.start)
        payload = self._decoder.decode(data)
        # urlsplit refuses only brackets and non-ASCII characters in a host: most payloads have
        # neither, not even as escapes, and their URLs are not split twice.
        if self._url_fields and not (
            plain and _OPEN not in data and _CLOSE not in data and _BACKSLASH not in data
        ):
            self._check_urls(payload)
        return payload

    def _check_urls(self, payload: T) -> None:
        for name in self._url_fields:
            try:
                urlsplit(getattr(payload, name, ""))
            except ValueError as error:
                raise msgspec.ValidationError(f"Invalid URL ({error}) - at `$.{name}`") from None

    def _refuse_invalid_utf8(self, data: bytes, position: int) -> None:
        """Raise a DecodeError naming where the invalid UTF-8 is, unless it lies only inside
        the items of the raw field."""
        anywhere = msgspec.DecodeError(f"Invalid UTF-8 at byte {position}")
        if self._raw_field is None:
            raise anywhere
        try:
            fields = _fields_decoder.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError):  # not an object, or a bad field name
            raise anywhere from None
        for name, value in fields.items():
            if name != self._raw_field and not _is_utf8(value):
                raise msgspec.DecodeError(f"Invalid UTF-8 - at `$.{name}`")
        if _is_utf8(fields.get(self._raw_field, b"")):
            raise anywhere  # in a field given twice, of which decoding keeps the last


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


# The update lifecycle of an app (over-the-air releases, docs/app-releases.md): page events of
# their own types whose payload is typed and bounded here, stored in ``page_events.properties``
# under the field names (``update_payload``). Unknown fields are refused, as a misspelt metric
# would otherwise be dropped without a word.
Version = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._+-]+$")]
Percent = Annotated[int, msgspec.Meta(ge=0, le=100)]
DurationMs = Annotated[int, msgspec.Meta(ge=0, le=86_400_000)]
Mbps = Annotated[float, msgspec.Meta(ge=0, le=100_000)]
Megabytes = Annotated[int, msgspec.Meta(ge=0, le=10**9)]
DeviceText = Annotated[str, msgspec.Meta(max_length=100)]
ErrorCode = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
FailureStage = Literal["check", "download", "verify", "install", "rollback"]


class _UpdateEvent(_Event, kw_only=True, forbid_unknown_fields=True):
    """What every update event tells: the release it is about, and the device."""

    # An app's event names no page; the row's URL is then the app's root (app://<app>/).
    url: Url = ""
    current_version: Version
    target_version: Version
    device_model: DeviceText = ""
    device_manufacturer: DeviceText = ""
    # The OS as the device reports it; replaces what the user agent said, when given.
    os: DeviceText = ""
    os_version: DeviceText = ""
    battery_level: Percent | None = None
    storage_available_mb: Megabytes | None = None


class UpdateStarted(_UpdateEvent, tag="update_started", kw_only=True):
    pass


class UpdateDownloading(_UpdateEvent, tag="update_downloading", kw_only=True):
    progress: Percent
    download_speed_mbps: Mbps | None = None


class UpdateDownloaded(_UpdateEvent, tag="update_downloaded", kw_only=True):
    package_size_bytes: Annotated[int, msgspec.Meta(ge=0, le=2**40)] | None = None
    download_duration_ms: DurationMs | None = None
    download_speed_mbps: Mbps | None = None


class UpdateInstalling(_UpdateEvent, tag="update_installing", kw_only=True):
    progress: Percent


class UpdateInstalled(_UpdateEvent, tag="update_installed", kw_only=True):
    install_duration_ms: DurationMs | None = None


class UpdateFailed(_UpdateEvent, tag="update_failed", kw_only=True):
    error_code: ErrorCode
    failure_stage: FailureStage
    error_message: Annotated[str, msgspec.Meta(max_length=500)] = ""


class UpdateCancelled(_UpdateEvent, tag="update_cancelled", kw_only=True):
    cancellation_reason: DeviceText = ""


class RollbackStarted(_UpdateEvent, tag="rollback_started", kw_only=True):
    rollback_reason: DeviceText = ""


class RollbackCompleted(_UpdateEvent, tag="rollback_completed", kw_only=True):
    rollback_duration_ms: DurationMs | None = None


UpdateEvent = (
    UpdateStarted
    | UpdateDownloading
    | UpdateDownloaded
    | UpdateInstalling
    | UpdateInstalled
    | UpdateFailed
    | UpdateCancelled
    | RollbackStarted
    | RollbackCompleted
)
UPDATE_EVENT_TYPES = tuple(str(kind.__struct_config__.tag) for kind in typing.get_args(UpdateEvent))
# The payload fields every update event has from the page-event protocol, not the update.
_PAGE_EVENT_FIELDS = frozenset({"type", "url", "id", "ts", "referrer", "os", "os_version"})


def update_payload(event: _UpdateEvent) -> dict[str, str]:
    """An update event's own fields that were given, as the text of ``properties``."""
    return {
        name: str(value)
        for name, value in msgspec.structs.asdict(event).items()
        if name not in _PAGE_EVENT_FIELDS and value is not None and value != ""
    }


PageEvent = Pageview | CustomEvent | Engagement | Outbound | Download | UpdateEvent


class AdEvent(msgspec.Struct, tag_field="type"):
    """An ad event as it is stored: the facts of the delivery, taken from the impression token
    the ad server signed (never from the client), and what the client reported with it."""

    site: Identifier
    impression: Identifier
    campaign: AdId
    ad: AdId
    placement: AdId = 0
    creative: Annotated[str, msgspec.Meta(max_length=32)] = ""
    url: Url = ""
    consent: Consent = Consent()
    app: Identifier | None = None
    ts: Millis | None = None


class Impression(AdEvent, tag="impression"):
    pass


class Viewable(AdEvent, tag="viewable"):
    pass


class Click(AdEvent, tag="click"):
    pass


class NotViewable(AdEvent, tag="notViewable"):
    """The player measured the ad and it never met the viewability rule (VAST NotViewable)."""


class ViewUndetermined(AdEvent, tag="viewUndetermined"):
    """The player could not measure viewability (VAST ViewUndetermined)."""


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


class VideoPause(AdEvent, tag="pause"):
    pass


class VideoResume(AdEvent, tag="resume"):
    pass


class VideoMute(AdEvent, tag="mute"):
    pass


class VideoUnmute(AdEvent, tag="unmute"):
    pass


class VideoSkip(AdEvent, tag="skip"):
    pass


# VAST error codes are three digits (VAST 4.2 section 2.3.6.3); 900 is "undefined error".
VastErrorCode = Annotated[int, msgspec.Meta(ge=100, le=999)]
UNDEFINED_VAST_ERROR = 900


class VastError(AdEvent, tag="error"):
    """A VAST player's error for a delivery, with the VAST error ``code`` it reported
    (``UNDEFINED_VAST_ERROR`` when it gave none); stored in ``ad_events.error_code``."""

    code: VastErrorCode = UNDEFINED_VAST_ERROR


# Video events come from VAST players through the signed tracking URLs (ads.endpoints).
AdEventPayload = (
    Impression
    | Viewable
    | NotViewable
    | ViewUndetermined
    | Click
    | VideoStart
    | VideoFirstQuartile
    | VideoMidpoint
    | VideoThirdQuartile
    | VideoComplete
    | VideoPause
    | VideoResume
    | VideoMute
    | VideoUnmute
    | VideoSkip
    | VastError
)
# The playback events of a VAST linear ad (ads.vast.TRACKED_EVENTS; a test holds them equal).
VIDEO_EVENTS = (
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
AD_EVENT_CLASSES: dict[str, type[AdEventPayload]] = {
    str(kind.__struct_config__.tag): kind for kind in typing.get_args(AdEventPayload)
}
AdEventType = Literal[
    "impression",
    "viewable",
    "notViewable",
    "viewUndetermined",
    "click",
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
    "error",
]  # the tags of AdEventPayload (a test holds them equal)


class AdEventRequest(msgspec.Struct):
    """A POST /ad-event body: an event of an ad the server delivered, named by the impression
    token that came with the ad (ads.signing). Anything else a client sends about the ad
    (campaign, ad, impression id) is ignored: it is not the client's to say."""

    type: AdEventType
    impression_token: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    # The n-th display of an app's cached listing item (each is an impression of its own).
    display: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1
    url: Url = ""
    bid: Identifier | None = None
    token: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    consent: Consent = Consent()
    app: Identifier | None = None
    ts: Millis | None = None


envelope_decoder = JsonDecoder[Envelope](Envelope, raw_field="events")
page_event_decoder = JsonDecoder[PageEvent](PageEvent, url_fields=("url", "referrer", "target"))
ad_event_request_decoder = JsonDecoder[AdEventRequest](AdEventRequest, url_fields=("url",))


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
    # The browser id's token (/init, /consent): needed for a grant naming ``bid``.
    token: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    tc: Annotated[str, msgspec.Meta(max_length=4096, pattern=r"^[A-Za-z0-9_.-]*$")] = ""
    lang: Annotated[str, msgspec.Meta(max_length=2, pattern=r"^[a-z]*$")] = ""


consent_decision_decoder = JsonDecoder[ConsentDecision](ConsentDecision)
