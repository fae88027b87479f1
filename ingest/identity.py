"""Who a visitor is, without personal data: browser ids, their HMAC tokens, cookieless hashes.

- ``/init`` issues a browser id (bid) and ``token = "<window>.<mac>"`` with ``window =
  floor(ts/300)`` and ``mac = HMAC-SHA256(site_secret, "<bid>:<site_id>:<window>")``. The token
  carries its window so the server can judge a token of any age: it is *fresh* (accepted with
  events and decisions) in its own and the next window, and it *renews* (``/init`` gives the
  same bid a fresh token) for ``RENEWAL_MAX_SECONDS``. Without a token that renews, ``/init``
  never hands out a bid the caller names: whoever learns a visitor's bid cannot act as them.
- A *link token* (``"<window>.<mac>"`` over ``"link:<bid>:<site_id>:<window>"``) carries a bid
  to another domain of the same site (docs/cross-domain.md); it is accepted by ``/init`` for
  ``LINK_MAX_SECONDS`` only, and never as a token, so a decorated link that is shared or logged
  does not give its bid away for long.
- Every check accepts every site secret still in its rotation grace period.
- Without analytics consent (or without a valid token) the visitor id is
  ``SHA-256(daily_salt, site_id, ip, user_agent)``, and the IP goes no further than this hash.

Entry points: issue_browser_id, issue_token, token_is_valid, token_renews, issue_link_token,
link_token_valid, cookieless_visitor_id.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import UTC, date, datetime, timedelta

from django.db import IntegrityError

from ingest.models import DailySalt

TOKEN_WINDOW_SECONDS = 300
# The longest a browser id lives without a visit: the longest a consent decision can last
# (ConsentBanner.consent_expiry_months is at most 24), so no stored decision outlives the id it
# was recorded with. A token older than this renews nothing: /init issues a new id.
RENEWAL_MAX_SECONDS = 731 * 86400
# A link token crosses one click: it is made when the visitor follows a link and used by the
# next page at once. The tracker's token is renewed whenever it sends events older than 4
# minutes, so half an hour (a visit's inactivity gap, events.visits) covers a page read at
# leisure; a link shared or logged later carries nothing.
LINK_MAX_SECONDS = 1800
_LINK = "link"


def issue_browser_id() -> str:
    return secrets.token_hex(16)


def _window(now: float | None) -> int:
    return int((time.time() if now is None else now) // TOKEN_WINDOW_SECONDS)


def _sign(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def _signed(*, secret: str, parts: tuple[str, ...], window: int) -> str:
    return f"{window}.{_sign(secret, ':'.join((*parts, str(window))))}"


def _verifies(
    *,
    secrets_in_force: list[str],
    parts: tuple[str, ...],
    token: str,
    max_age_windows: int,
    now: float | None,
) -> bool:
    """The token was issued at most ``max_age_windows`` windows before the current one (never
    after it) and its MAC is one of a secret in force."""
    newest = _window(now)
    oldest = newest - max_age_windows
    window_text, _, mac = token.partition(".")
    # isascii: compare_digest refuses non-ASCII text (a forged token is a refusal, not a 500).
    if not (window_text.isdigit() and window_text.isascii() and mac.isascii()):
        return False
    window = int(window_text[:12])
    if not oldest <= window <= newest:
        return False
    message = ":".join((*parts, str(window)))
    return any(hmac.compare_digest(_sign(secret, message), mac) for secret in secrets_in_force)


def issue_token(*, secret: str, bid: str, site_id: str, now: float | None = None) -> str:
    return _signed(secret=secret, parts=(bid, site_id), window=_window(now))


def token_is_valid(
    *, secrets_in_force: list[str], bid: str, site_id: str, token: str, now: float | None = None
) -> bool:
    """Fresh: issued in this window or the previous one (for events, decisions, ad requests)."""
    return _verifies(
        secrets_in_force=secrets_in_force,
        parts=(bid, site_id),
        token=token,
        max_age_windows=1,
        now=now,
    )


def token_renews(
    *, secrets_in_force: list[str], bid: str, site_id: str, token: str, now: float | None = None
) -> bool:
    """Issued by this server for this bid and site, at most RENEWAL_MAX_SECONDS ago."""
    return _verifies(
        secrets_in_force=secrets_in_force,
        parts=(bid, site_id),
        token=token,
        max_age_windows=RENEWAL_MAX_SECONDS // TOKEN_WINDOW_SECONDS,
        now=now,
    )


def issue_link_token(*, secret: str, bid: str, site_id: str, now: float | None = None) -> str:
    return _signed(secret=secret, parts=(_LINK, bid, site_id), window=_window(now))


def link_token_valid(
    *, secrets_in_force: list[str], bid: str, site_id: str, token: str, now: float | None = None
) -> bool:
    return _verifies(
        secrets_in_force=secrets_in_force,
        parts=(_LINK, bid, site_id),
        token=token,
        max_age_windows=LINK_MAX_SECONDS // TOKEN_WINDOW_SECONDS,
        now=now,
    )


_salt_cache: dict[date, str] = {}


def salt_is_cached(day: date) -> bool:
    return day in _salt_cache


def salt_for(day: date) -> str:
    cached = _salt_cache.get(day)
    if cached is not None:
        return cached
    salt = DailySalt.objects.filter(day=day).values_list("salt", flat=True).first()
    if salt is None:
        try:
            salt = DailySalt.objects.create(day=day).salt
        except IntegrityError:  # another process made today's salt first
            salt = DailySalt.objects.get(day=day).salt
    _salt_cache.clear()  # only today's salt is ever needed again
    _salt_cache[day] = salt
    return salt


def cookieless_visitor_id(*, site_id: str, ip: str, user_agent: str, day: date) -> str:
    material = f"{salt_for(day)}:{site_id}:{ip}:{user_agent}".encode()
    return hashlib.sha256(material).hexdigest()[:32]


def salts_purge_older_than(*, days: int = 2, today: date | None = None) -> int:
    cutoff = (today or datetime.now(UTC).date()) - timedelta(days=days)
    deleted, _ = DailySalt.objects.filter(day__lt=cutoff).delete()
    return deleted
