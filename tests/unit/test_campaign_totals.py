"""The campaign totals every decision reads (ads.counters.campaign_delivery): the decisions that
find them stale at the same moment share one read of the counters, whatever their number.

Thousands of SSE streams re-decide at once after a campaign change; when each sent a read of
its own they queued for the bounded Redis pool until its timeout and their streams failed
without a first ad (bench/ad_delivery.py, run 5). Here the counters are the embedded ones (a
SQLite file) behind a gate that holds each read until the test opens it and counts the reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from ads import counters
from ads.counters import SqliteCounters
from ads.delivery import CampaignDelivery


class GatedCounters(SqliteCounters):
    """The embedded counters; each read of campaign totals is counted and waits for ``gate``."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reads: list[list[int]] = []
        self.gate = asyncio.Event()
        self.failing = False

    async def campaign_delivery(self, campaign_ids: Iterable[int]) -> dict[int, CampaignDelivery]:
        campaigns = list(campaign_ids)
        self.reads.append(campaigns)
        await self.gate.wait()
        if self.failing:
            raise ConnectionError("counters unreachable")
        return await super().campaign_delivery(campaigns)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GatedCounters]:
    counters.reset_counters()
    gated = GatedCounters(tmp_path / "counters.sqlite3")
    monkeypatch.setattr(counters, "_counters", gated)
    yield gated
    counters.reset_counters()
    gated.close()


async def impressions(store: GatedCounters, campaign_id: int, count: int) -> None:
    for _ in range(count):
        await store.record_impression(campaign_id=campaign_id, visitor_id="v", period_seconds=0)


def test_concurrent_decisions_share_one_read(store: GatedCounters) -> None:
    async def scenario() -> list[dict[int, CampaignDelivery]]:
        await impressions(store, 7, 3)
        await impressions(store, 8, 1)
        decisions = [asyncio.create_task(counters.campaign_delivery([7, 8])) for _ in range(2000)]
        await asyncio.sleep(0.01)
        assert store.reads == [[7, 8]]  # one read for all 2,000, held at the gate
        store.gate.set()
        return await asyncio.gather(*decisions)

    totals = asyncio.run(scenario())
    assert {(found[7].today, found[8].today) for found in totals} == {(3, 1)}
    assert store.reads == [[7, 8]]


def test_decisions_during_a_read_use_the_totals_read_before(
    store: GatedCounters, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        await impressions(store, 7, 3)
        store.gate.set()
        assert (await counters.campaign_delivery([7]))[7].today == 3
        # The totals are stale from now on; 2 more impressions are counted meanwhile.
        monkeypatch.setattr(counters, "CAMPAIGN_DELIVERY_CACHE_SECONDS", -1.0)
        counters._campaign_delivery[7] = (0.0, counters._campaign_delivery[7][1])
        await impressions(store, 7, 2)
        store.gate.clear()
        reading = asyncio.create_task(counters.campaign_delivery([7]))
        await asyncio.sleep(0.01)
        # Another decision does not wait for the read under way: the totals read before.
        assert (await counters.campaign_delivery([7]))[7].today == 3
        assert len(store.reads) == 2
        store.gate.set()
        assert (await reading)[7].today == 5

    asyncio.run(scenario())


def test_a_decision_that_goes_away_does_not_cancel_the_others_read(
    store: GatedCounters,
) -> None:
    async def scenario() -> None:
        await impressions(store, 7, 4)
        first = asyncio.create_task(counters.campaign_delivery([7]))
        await asyncio.sleep(0.01)
        second = asyncio.create_task(counters.campaign_delivery([7]))
        await asyncio.sleep(0.01)
        first.cancel()  # its stream disconnected
        store.gate.set()
        assert (await second)[7].today == 4
        assert len(store.reads) == 1

    asyncio.run(scenario())


def test_a_failed_read_fails_its_waiters_and_the_next_decision_reads_again(
    store: GatedCounters,
) -> None:
    async def scenario() -> None:
        await impressions(store, 7, 2)
        store.failing = True
        waiting = [asyncio.create_task(counters.campaign_delivery([7])) for _ in range(3)]
        await asyncio.sleep(0.01)
        store.gate.set()
        outcomes = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(isinstance(outcome, ConnectionError) for outcome in outcomes)
        store.failing = False
        assert (await counters.campaign_delivery([7]))[7].today == 2
        assert len(store.reads) == 2

    asyncio.run(scenario())
