"""Signed, expiring tokens of what the ad server delivered: the only proof an ad event counts on.

- An **impression token** comes with every delivery (an SSE rendering, a listing item, a VAST
  document's URLs): it binds the site, placement, campaign, ad, creative kind and the one-off
  impression id of that rendering. ``POST /ad-event`` takes the ad's facts from it, never from
  the client, so an impression of a campaign that was not served, on a site it was not served
  to, or under an id the server did not issue, is refused (docs/tracking-protocol.md).
- A **tracking URL** (``/ads/track``) names one event of one delivery; a **click URL**
  (``/ads/click``) also carries the advertiser's address, so the redirect never goes anywhere
  Naboria did not put there (no open redirect) and keeps working after the ad is withdrawn.

Each kind has its own salt, so a token of one kind is not accepted as another. They expire
after TOKEN_MAX_AGE_SECONDS. Signed with Django's signing (HMAC-SHA256 over SECRET_KEY): every
process of an installation verifies what any other issued.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, fields
from functools import lru_cache

from django.conf import settings
from django.core import signing

DELIVERY_SALT = "naboria.ads.delivery"
TRACKING_SALT = "naboria.ads.tracking"
# How long after a delivery its events are accepted: longer than a page stays open or an app
# keeps a listing, and the deduplication window of ad events is longer still.
TOKEN_MAX_AGE_SECONDS = 24 * 3600


class InvalidTrackingToken(Exception):
    """Tampered with, malformed or expired."""


@dataclass(frozen=True)
class Delivery:
    """One ad as the ad server delivered it."""

    impression: str
    site: str  # public id
    campaign: int
    ad: int
    placement: int
    creative: str
    # The identity the decision counted frequency caps by (a consenting app's browser id, or
    # the day's hash): its impressions are counted by the same one, whatever the event says.
    viewer: str = ""
    # An app shows a cached listing item again every ``rotation`` seconds: each display is an
    # impression of its own, at most one per rotation since ``issued`` (epoch seconds). 0 for a
    # delivery shown once (a page's SSE rendering, VAST).
    rotation: int = 0
    issued: int = 0

    def display_impression(self, display: int, *, now: float) -> str:
        """The impression id of the ``display``-th display (1 = the delivery itself); raises
        ValueError for a display this delivery cannot have had by ``now``."""
        if display == 1:
            return self.impression
        possible = 1 + (int(now) - self.issued) // self.rotation if self.rotation else 1
        if not 1 < display <= possible:
            raise ValueError(f"display {display} of an ad delivered for at most {possible}")
        return f"{self.impression}.{display}"


@dataclass(frozen=True)
class TrackedImpression(Delivery):
    """One event of a delivery, as a tracking or click URL records it."""

    event: str = "impression"
    target: str = ""  # clicks: where to send the visitor


# Field names read once: dataclasses.astuple and asdict deep-copy, 15 µs of a 45 µs signature
# that every rendering of an ad pays twice.
_DELIVERY_FIELDS = tuple(field.name for field in fields(Delivery))
_TRACKED_FIELDS = tuple(field.name for field in fields(TrackedImpression))


class _KeyedSigner(signing.TimestampSigner):
    """Django's TimestampSigner with its HMAC keyed once: Django derives the key from the salt
    and SECRET_KEY (one SHA-256) and keys a new HMAC for every signature, which was a third of
    the two signatures of every rendering. The signatures are the same, so signing.loads
    verifies them (with fallback keys too)."""

    def __init__(self, *, key: str, salt: str) -> None:
        super().__init__(key=key, salt=salt)
        derived = hashlib.sha256(f"{salt}signer{key}".encode()).digest()
        self._keyed = hmac.new(derived, digestmod=hashlib.sha256)

    def signature(self, value: str | bytes, key: str | bytes | None = None) -> str:
        if key is not None and key != self.key:
            return super().signature(value, key)
        mac = self._keyed.copy()
        mac.update(value.encode() if isinstance(value, str) else value)
        return signing.b64_encode(mac.digest()).decode()


@lru_cache(maxsize=8)
def _signer(salt: str, secret_key: str) -> signing.TimestampSigner:
    # One signer per salt and key (a new one per call reads the settings each time): what
    # signing.dumps does, for the two tokens of every rendering.
    return _KeyedSigner(key=secret_key, salt=salt)


def _dumps(payload: object, salt: str) -> str:
    # Not compressed: zlib was a third of the cost of a signature (the payloads are ~100-300
    # bytes, a third longer uncompressed). Tokens compressed by earlier versions still load.
    return _signer(salt, settings.SECRET_KEY).sign_object(payload)


def sign_delivery(delivery: Delivery) -> str:
    # A list, not a dict: the token travels with every ad and in every ad event.
    return _dumps([getattr(delivery, name) for name in _DELIVERY_FIELDS], DELIVERY_SALT)


def unsign_delivery(token: str) -> Delivery:
    try:
        fields = signing.loads(token, salt=DELIVERY_SALT, max_age=TOKEN_MAX_AGE_SECONDS)
        return Delivery(*fields)
    except (signing.BadSignature, TypeError, ValueError) as error:
        raise InvalidTrackingToken(str(error)) from None


def sign(tracked: TrackedImpression) -> str:
    # A dict, as since the first release: URLs already handed to apps stay valid on upgrade.
    return _dumps({name: getattr(tracked, name) for name in _TRACKED_FIELDS}, TRACKING_SALT)


def unsign(token: str) -> TrackedImpression:
    try:
        payload = signing.loads(token, salt=TRACKING_SALT, max_age=TOKEN_MAX_AGE_SECONDS)
        return TrackedImpression(**payload)
    except (signing.BadSignature, TypeError, ValueError) as error:
        raise InvalidTrackingToken(str(error)) from None
