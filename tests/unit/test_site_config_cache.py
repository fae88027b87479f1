"""The tracking endpoints' cache of site settings (ingest.selectors): one database read at a
time per site however many requests need it, a site in use read again before it expires
without any request waiting, and a database outage that reaches requests only once the entry
has expired. The database read itself is replaced by a counting stand-in (the cache, its
timing and the thread hop of ``in_database`` are the real ones)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Iterator

import pytest
from django.db import OperationalError

from ingest import selectors
from ingest.http import Refusal
from ingest.selectors import SiteConfig, forget_site_configs, site_config_get

# in_database checks the connections of its thread before the (stand-in) read: the database
# thread may hold one left open by an earlier test, which pytest-django would refuse to check.
pytestmark = pytest.mark.django_db

SITE = SiteConfig(
    public_id="cachesite",
    allowed_domains=("shop.example",),
    secrets=("s",),
    retention_days=30,
    analytics_enabled=True,
    ads_enabled=True,
    respect_do_not_track=False,
)


class Database:
    """Stands in for ``load_site_config``: answers ``config`` after ``delay``, counting
    reads; ``hold`` keeps a read waiting until released; ``down`` makes reads fail."""

    def __init__(self, config: SiteConfig | None, delay: float = 0.0) -> None:
        self.config, self.delay = config, delay
        self.reads = 0
        self.down = False
        self.released = threading.Event()
        self.released.set()

    def hold(self) -> None:
        self.released.clear()

    def __call__(self, public_id: str) -> SiteConfig | None:
        self.reads += 1
        self.released.wait(5)
        time.sleep(self.delay)
        if self.down:
            raise OperationalError("connection refused")
        return self.config


@pytest.fixture
def database(monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    forget_site_configs()
    stand_in = Database(SITE, delay=0.05)
    monkeypatch.setattr(selectors, "load_site_config", stand_in)
    yield stand_in
    forget_site_configs()


def test_requests_that_need_a_site_at_once_make_one_database_read(database):
    async def requests() -> list[SiteConfig]:
        return await asyncio.gather(*(site_config_get(public_id="cachesite") for _ in range(200)))

    assert asyncio.run(requests()) == [SITE] * 200
    assert database.reads == 1
    asyncio.run(requests())  # now cached
    assert database.reads == 1


def test_an_unknown_site_is_remembered_too(database):
    database.config = None

    async def requests() -> list[object]:
        return await asyncio.gather(
            *(site_config_get(public_id="nosuchsite") for _ in range(50)), return_exceptions=True
        )

    for _ in range(2):
        answers = asyncio.run(requests())
        assert all(isinstance(answer, Refusal) and answer.status == 404 for answer in answers)
    assert database.reads == 1


def test_a_site_in_use_is_read_again_in_the_background_before_it_expires(database):
    changed = dataclasses.replace(SITE, retention_days=90)

    async def scenario() -> None:
        assert await site_config_get(public_id="cachesite") == SITE
        selectors._cache["cachesite"].refresh = 0.0  # due for its read, not expired
        database.config = changed
        database.hold()
        # Answered from the entry at once, though the database has not answered yet ...
        answers = await asyncio.wait_for(
            asyncio.gather(*(site_config_get(public_id="cachesite") for _ in range(20))), 1.0
        )
        assert answers == [SITE] * 20
        assert len(selectors._reads) == 1  # ... and read again once, not once per request
        database.released.set()
        while selectors._reads:
            await asyncio.sleep(0.01)
        assert await site_config_get(public_id="cachesite") == changed

    asyncio.run(scenario())
    assert database.reads == 2


def test_an_expired_site_is_read_before_the_answer(database):
    changed = dataclasses.replace(SITE, allowed_domains=("other.example",))

    async def scenario() -> None:
        await site_config_get(public_id="cachesite")
        selectors._cache["cachesite"].expires = 0.0
        database.config = changed
        assert await site_config_get(public_id="cachesite") == changed

    asyncio.run(scenario())


def test_a_request_that_goes_away_does_not_cancel_the_read_others_wait_for(database):
    async def scenario() -> SiteConfig:
        first = asyncio.create_task(site_config_get(public_id="cachesite"))
        second = asyncio.create_task(site_config_get(public_id="cachesite"))
        await asyncio.sleep(0.01)
        first.cancel()
        return await second

    assert asyncio.run(scenario()) == SITE
    assert database.reads == 1


def test_a_database_outage_reaches_requests_only_once_the_entry_expired(database, caplog):
    async def scenario() -> None:
        await site_config_get(public_id="cachesite")
        database.down = True
        selectors._cache["cachesite"].refresh = 0.0
        assert await site_config_get(public_id="cachesite") == SITE
        while selectors._reads:
            await asyncio.sleep(0.01)
        assert await site_config_get(public_id="cachesite") == SITE  # still the entry
        selectors._cache["cachesite"].expires = 0.0
        with pytest.raises(Refusal) as refused:
            await site_config_get(public_id="cachesite")
        assert refused.value.status == 503

    asyncio.run(scenario())
    assert "site settings not read again" in caplog.text
