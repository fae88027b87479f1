"""Browser-id tokens (windows, rotation grace) and cookieless visitor ids (daily salts)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.utils import timezone

from ingest import identity
from ingest.models import DailySalt
from sites.selectors import site_secrets_valid
from sites.services import site_secret_rotate

WINDOW = identity.TOKEN_WINDOW_SECONDS


def test_token_verifies_in_its_window_and_the_next_only():
    issued_at = 1_700_000_000.0
    token = identity.issue_token(secret="s", bid="b1", site_id="site", now=issued_at)

    def valid(at: float) -> bool:
        return identity.token_is_valid(
            secrets_in_force=["s"], bid="b1", site_id="site", token=token, now=at
        )

    window_start = issued_at - issued_at % WINDOW
    assert valid(window_start)
    assert valid(window_start + 2 * WINDOW - 1)  # previous window still accepted
    assert not valid(window_start + 2 * WINDOW)  # two windows later: expired
    assert not valid(window_start - 1)  # a token from the future is not accepted either


def test_token_carries_its_window_and_renews_up_to_the_horizon_only():
    issued_at = 1_700_000_000.0
    token = identity.issue_token(secret="s", bid="b1", site_id="site", now=issued_at)
    assert token.split(".")[0] == str(int(issued_at // WINDOW))

    def renews(at: float) -> bool:
        return identity.token_renews(
            secrets_in_force=["s"], bid="b1", site_id="site", token=token, now=at
        )

    window_start = issued_at - issued_at % WINDOW
    assert renews(window_start)
    assert renews(window_start + identity.RENEWAL_MAX_SECONDS + WINDOW - 1)
    assert not renews(window_start + identity.RENEWAL_MAX_SECONDS + WINDOW)
    assert not renews(window_start - 1)


def test_link_token_lives_half_an_hour_and_is_no_token():
    issued_at = 1_700_000_000.0
    link = identity.issue_link_token(secret="s", bid="b1", site_id="site", now=issued_at)
    args = {"secrets_in_force": ["s"], "bid": "b1", "site_id": "site"}
    window_start = issued_at - issued_at % WINDOW
    assert identity.link_token_valid(**args, token=link, now=window_start)
    last = window_start + identity.LINK_MAX_SECONDS + WINDOW - 1
    assert identity.link_token_valid(**args, token=link, now=last)
    assert not identity.link_token_valid(**args, token=link, now=last + 1)
    assert not identity.token_renews(**args, token=link, now=issued_at)
    assert not identity.token_is_valid(**args, token=link, now=issued_at)


def test_token_is_bound_to_bid_and_site():
    token = identity.issue_token(secret="s", bid="b1", site_id="site", now=0)
    for bid, site in [("b2", "site"), ("b1", "other")]:
        assert not identity.token_is_valid(
            secrets_in_force=["s"], bid=bid, site_id=site, token=token, now=0
        )


@pytest.mark.django_db
def test_token_of_a_rotated_secret_verifies_during_the_grace_period(site):
    old_secret = site_secrets_valid(site=site)[0]
    token = identity.issue_token(secret=old_secret, bid="b", site_id=site.public_id)
    site_secret_rotate(site=site, grace_seconds=300)
    in_force = site_secrets_valid(site=site)
    assert identity.token_is_valid(
        secrets_in_force=in_force, bid="b", site_id=site.public_id, token=token
    )
    after_grace = site_secrets_valid(site=site, now=timezone.now() + timedelta(seconds=301))
    assert not identity.token_is_valid(
        secrets_in_force=after_grace, bid="b", site_id=site.public_id, token=token
    )


@pytest.mark.django_db
def test_cookieless_id_is_stable_within_a_day_and_changes_across_days_and_sites():
    identity._salt_cache.clear()
    args = {"site_id": "s1", "ip": "203.0.113.9", "user_agent": "UA"}
    today, tomorrow = date(2026, 11, 22), date(2026, 11, 23)
    first = identity.cookieless_visitor_id(**args, day=today)
    assert first == identity.cookieless_visitor_id(**args, day=today)
    assert first != identity.cookieless_visitor_id(**args, day=tomorrow)
    assert first != identity.cookieless_visitor_id(**{**args, "site_id": "s2"}, day=today)
    assert "203.0.113.9" not in first
    assert DailySalt.objects.count() == 2


@pytest.mark.django_db
def test_old_salts_are_purged():
    for offset in range(4):
        DailySalt.objects.create(day=date(2026, 11, 22) - timedelta(days=offset))
    assert identity.salts_purge_older_than(days=1, today=date(2026, 11, 22)) == 2
    assert sorted(DailySalt.objects.values_list("day", flat=True)) == [
        date(2026, 11, 21),
        date(2026, 11, 22),
    ]
