"""Signed, expiring tracking and click URLs for ads delivered by Naboria.

A click URL carries the advertiser's address inside its signed token, so the redirect never
goes anywhere that Naboria did not put there (no open redirect) and keeps working after the ad
is withdrawn; a tracking URL carries which event of which impression it records. Both expire
after TRACKING_URL_MAX_AGE_SECONDS. Used by the stream, the listing, the VAST endpoint and the
views that answer the URLs (ads.endpoints).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from django.core import signing

SALT = "naboria.ads.tracking"
TRACKING_URL_MAX_AGE_SECONDS = 24 * 3600


class InvalidTrackingToken(Exception):
    """Tampered with, malformed or expired."""


@dataclass(frozen=True)
class TrackedImpression:
    impression: str
    site: str  # public id
    campaign: int
    ad: int
    placement: int
    creative: str
    event: str = "impression"
    target: str = ""  # clicks: where to send the visitor


def sign(tracked: TrackedImpression) -> str:
    return signing.dumps(asdict(tracked), salt=SALT, compress=True)


def unsign(token: str) -> TrackedImpression:
    try:
        payload = signing.loads(token, salt=SALT, max_age=TRACKING_URL_MAX_AGE_SECONDS)
        return TrackedImpression(**payload)
    except (signing.BadSignature, TypeError, ValueError) as error:
        raise InvalidTrackingToken(str(error)) from None
