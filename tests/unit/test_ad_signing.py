"""The ad server's signer (ads.signing) keys its HMAC once per salt, for speed: its tokens must
be exactly the ones Django's TimestampSigner makes, so that ``signing.loads`` (and every
process of an installation, also of an earlier version) verifies them."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core import signing as django_signing

from ads import signing
from ads.signing import DELIVERY_SALT, TRACKING_SALT, Delivery, TrackedImpression

DELIVERY = Delivery(
    impression="0f" * 16, site="shop", campaign=3, ad=4, placement=5, creative="image", issued=7
)


def test_tokens_are_djangos_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("django.core.signing.time.time", lambda: 1_765_000_000.0)
    django_signer = django_signing.TimestampSigner(key=settings.SECRET_KEY, salt=DELIVERY_SALT)
    token = signing.sign_delivery(DELIVERY)
    assert token == django_signer.sign_object(list(vars(DELIVERY).values()))
    assert signing.unsign_delivery(token) == DELIVERY
    tracked = TrackedImpression(**vars(DELIVERY), event="click", target="https://a.example/")
    url_token = signing.sign(tracked)
    assert django_signing.loads(url_token, salt=TRACKING_SALT) == vars(tracked)
    assert signing.unsign(url_token) == tracked


def test_a_token_of_another_salt_or_key_is_refused(settings) -> None:
    token = signing.sign_delivery(DELIVERY)
    with pytest.raises(signing.InvalidTrackingToken):
        signing.unsign(token)  # a delivery token is no tracking URL token
    settings.SECRET_KEY = "another installation's secret key, long enough to be one"
    with pytest.raises(signing.InvalidTrackingToken):
        signing.unsign_delivery(token)
