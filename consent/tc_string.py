"""A strict decoder of IAB TCF v2 (v2.0 to v2.2) TC strings, for the server's check of the
decisions the banner records (consent.decisions).

Why not a library: the one on PyPI (``iab-tcf`` 0.2.2, last released in 2022, built on a fork of
``bitarray``) decodes v2.2 core segments but reads past the end of a truncated string as zeros
(``"CAAA"`` decodes to a consent of CMP 0) and accepts any text as a later segment, so it cannot
tell a string the banner made from a forged one. This module reads the core segment as the
IAB's "TCF v2 Consent string and vendor list formats" specifies it, field by field, and refuses
a string whose bits end before its fields do, whose version is not 2, whose vendor ranges are
out of order, or whose later segments are not a disclosed-vendors, allowed-vendors or publisher
TC segment of the right length. The tests decode strings made by the IAB's own JavaScript
library (``@iabtcf/core``) and compare every field.

Entry point: tc_string_decode -> TCString, or InvalidTCString with the reason.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime

_BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")
SEGMENT_DISCLOSED_VENDORS, SEGMENT_ALLOWED_VENDORS, SEGMENT_PUBLISHER_TC = 1, 2, 3


class InvalidTCString(ValueError):
    """The text is not a well-formed TCF v2 TC string."""


@dataclass(frozen=True)
class TCString:
    """The core segment's fields (the ids of set bits as frozensets)."""

    version: int
    created: datetime
    last_updated: datetime
    cmp_id: int
    cmp_version: int
    consent_screen: int
    consent_language: str
    vendor_list_version: int
    policy_version: int
    is_service_specific: bool
    use_non_standard_texts: bool
    special_feature_optins: frozenset[int]
    purpose_consents: frozenset[int]
    purpose_legitimate_interests: frozenset[int]
    purpose_one_treatment: bool
    publisher_country: str
    vendor_consents: frozenset[int]
    vendor_legitimate_interests: frozenset[int]
    publisher_restrictions: int
    segments: tuple[int, ...]  # the types of the segments after the core one


class _Bits:
    """Reads big-endian fields of a segment, refusing to read past its last bit."""

    def __init__(self, segment: str) -> None:
        if not _BASE64URL.match(segment):
            raise InvalidTCString("a segment is not base64url text")
        try:
            data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        except (binascii.Error, ValueError):
            raise InvalidTCString("a segment is not valid base64url") from None
        self.value, self.length, self.position = int.from_bytes(data, "big"), len(data) * 8, 0

    def read(self, width: int) -> int:
        if self.position + width > self.length:
            raise InvalidTCString("the string ends before its fields do (truncated)")
        shift = self.length - self.position - width
        self.position += width
        return (self.value >> shift) & ((1 << width) - 1)

    def flag(self) -> bool:
        return self.read(1) == 1

    def ids(self, width: int) -> frozenset[int]:
        """A bit field: the 1-based positions of its set bits."""
        field = self.read(width)
        return frozenset(i + 1 for i in range(width) if field >> (width - 1 - i) & 1)

    def letters(self, count: int) -> str:
        codes = [self.read(6) for _ in range(count)]
        if any(code > 25 for code in codes):
            raise InvalidTCString("a language or country code is not two letters")
        return "".join(chr(ord("A") + code) for code in codes)

    def time(self) -> datetime:
        return datetime.fromtimestamp(self.read(36) / 10, tz=UTC)

    def ranges(self, count: int, *, limit: int | None = None) -> frozenset[int]:
        ids: set[int] = set()
        for _ in range(count):
            is_range = self.flag()
            start = self.read(16)
            end = self.read(16) if is_range else start
            if not 1 <= start <= end or (limit is not None and end > limit):
                raise InvalidTCString(f"vendor range {start}-{end} is not a valid range")
            ids.update(range(start, end + 1))
        return frozenset(ids)

    def vendors(self) -> frozenset[int]:
        """A vendor section: MaxVendorId, then a bit field or range entries."""
        max_vendor_id = self.read(16)
        if self.flag():
            return self.ranges(self.read(12), limit=max_vendor_id)
        return self.ids(max_vendor_id)


def _later_segment(segment: str) -> int:
    bits = _Bits(segment)
    kind = bits.read(3)
    if kind in (SEGMENT_DISCLOSED_VENDORS, SEGMENT_ALLOWED_VENDORS):
        bits.vendors()
    elif kind == SEGMENT_PUBLISHER_TC:
        bits.read(48)  # publisher purposes: consents and legitimate interests
        custom = bits.read(6)
        bits.read(2 * custom)
    else:
        raise InvalidTCString(f"unknown segment type {kind}")
    return kind


def tc_string_decode(text: str) -> TCString:
    """The core segment of a TCF v2 TC string; InvalidTCString if it is not one."""
    if not text:
        raise InvalidTCString("empty TC string")
    core, *later = text.split(".")
    bits = _Bits(core)
    version = bits.read(6)
    if version != 2:
        raise InvalidTCString(f"TC string version {version}, expected 2")
    created, last_updated = bits.time(), bits.time()
    cmp_id, cmp_version, consent_screen = bits.read(12), bits.read(12), bits.read(6)
    consent_language = bits.letters(2)
    vendor_list_version, policy_version = bits.read(12), bits.read(6)
    is_service_specific, use_non_standard_texts = bits.flag(), bits.flag()
    special_feature_optins = bits.ids(12)
    purpose_consents, purpose_legitimate_interests = bits.ids(24), bits.ids(24)
    purpose_one_treatment = bits.flag()
    publisher_country = bits.letters(2)
    vendor_consents = bits.vendors()
    vendor_legitimate_interests = bits.vendors()
    restrictions = bits.read(12)
    for _ in range(restrictions):
        bits.read(8)  # purpose id and restriction type
        bits.ranges(bits.read(12))
    return TCString(
        version=version,
        created=created,
        last_updated=last_updated,
        cmp_id=cmp_id,
        cmp_version=cmp_version,
        consent_screen=consent_screen,
        consent_language=consent_language,
        vendor_list_version=vendor_list_version,
        policy_version=policy_version,
        is_service_specific=is_service_specific,
        use_non_standard_texts=use_non_standard_texts,
        special_feature_optins=special_feature_optins,
        purpose_consents=purpose_consents,
        purpose_legitimate_interests=purpose_legitimate_interests,
        purpose_one_treatment=purpose_one_treatment,
        publisher_country=publisher_country,
        vendor_consents=vendor_consents,
        vendor_legitimate_interests=vendor_legitimate_interests,
        publisher_restrictions=restrictions,
        segments=tuple(_later_segment(segment) for segment in later),
    )
