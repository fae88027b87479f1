"""Who a visitor is, without personal data: browser ids, their HMAC tokens, cookieless hashes.

- ``/init`` issues a browser id (bid) and ``token = HMAC-SHA256(site_secret,
  "<bid>:<site_id>:<floor(ts/300)>")``; a token verifies in its own and the next window, and
  with every site secret still in its rotation grace period.
- Without analytics consent (or without a valid token) the visitor id is
  ``SHA-256(daily_salt, site_id, ip, user_agent)``, and the IP goes no further than this hash.

Entry points: issue_browser_id, issue_token, token_is_valid, cookieless_visitor_id.
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


def issue_browser_id() -> str:
    return secrets.token_hex(16)


def _window(now: float) -> int:
    return int(now // TOKEN_WINDOW_SECONDS)


def _sign(secret: str, bid: str, site_id: str, window: int) -> str:
    message = f"{bid}:{site_id}:{window}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def issue_token(*, secret: str, bid: str, site_id: str, now: float | None = None) -> str:
    return _sign(secret, bid, site_id, _window(time.time() if now is None else now))


def token_is_valid(
    *, secrets_in_force: list[str], bid: str, site_id: str, token: str, now: float | None = None
) -> bool:
    current = _window(time.time() if now is None else now)
    return any(
        hmac.compare_digest(_sign(secret, bid, site_id, window), token)
        for secret in secrets_in_force
        for window in (current, current - 1)
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
