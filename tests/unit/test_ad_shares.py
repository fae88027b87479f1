"""Shares as sold (issue 14): among the campaigns of the highest eligible priority, a campaign
gets its weight's share of the impressions, split evenly among its eligible ads, both decision
by decision and over the rotations of an open page (the SSE stream re-decides every rotation,
rotating away from the ad on screen).

Statistical but deterministic: thousands of decisions of the pure ``choose_ad`` with a seeded
``random.Random``. A share passes within SIGMAS binomial standard deviations of the configured
one; the rotation tests count each position of a page's sequence over independent pages, so
each of those counts is binomial too.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest

from ads.decisioning import choose_ad
from ads.delivery import (
    CampaignDelivery,
    Creative,
    DeliveryContext,
    Limits,
    LiveAd,
    PlacementSlot,
)
from ads.streams import rotation_avoid

SIGMAS = 4.0
DECISIONS = 20_000
PAGES = 4_000  # open pages in a rotation test
ROTATIONS = 5  # ads each page shows: the first, then four rotations

NOW = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)  # 60 % of the UTC day gone
SLOT = PlacementSlot(
    placement_id=10,
    site_id=1,
    key="pl_top",
    sizes=frozenset({"300x250"}),
    formats=frozenset({"image"}),
)
CONTEXT = DeliveryContext(
    site_id=1,
    path="/shoes/red",
    country="FR",
    device="mobile",
    now=NOW,
    personalised=True,
)
BANNER = Creative(kind="image", width=300, height=250)

Predict = Callable[[Sequence[LiveAd]], Sequence[float]]


def campaign(
    campaign_id: int, *, weight: int, ads: int = 1, priority: int = 1, **fields: Any
) -> list[LiveAd]:
    """The live ads of one campaign, ad ids ``campaign_id * 10 + 1`` on, each carrying the
    campaign's priority and weight as publishing copies them."""
    values: dict[str, Any] = {
        "campaign_id": campaign_id,
        "advertiser_id": 1,
        "organization_id": 1,
        "site_ids": frozenset({1}),
        "priority": priority,
        "weight": weight,
        "starts_at": NOW - timedelta(days=1),
        "ends_at": None,
        "creative": BANNER,
    }
    values.update(fields)
    return [LiveAd(ad_id=campaign_id * 10 + number, **values) for number in range(1, ads + 1)]


def seeded_rng(seed: int) -> random.Random:
    # Reproducible draws are the point here; nothing security-related depends on them.
    return random.Random(seed)  # noqa: S311


def decide(
    ads: Sequence[LiveAd],
    rng: random.Random,
    *,
    shown: LiveAd | None = None,
    delivery: Mapping[int, CampaignDelivery] | None = None,
    frequency: dict[int, int] | None = None,
    predict_ctr: Predict | None = None,
    exploration: float = 0.0,
) -> LiveAd:
    chosen = choose_ad(
        ads=ads,
        slot=SLOT,
        context=replace(CONTEXT, frequency=frequency or {}),
        delivery=delivery or {},
        rng=rng,
        avoid=rotation_avoid(shown),
        predict_ctr=predict_ctr,
        exploration=exploration,
    )
    assert chosen is not None
    return chosen


def decisions(ads: Sequence[LiveAd], *, seed: int = 14, **options: Any) -> list[LiveAd]:
    """DECISIONS independent decisions, as the listing and VAST endpoints make them."""
    rng = seeded_rng(seed)
    return [decide(ads, rng, **options) for _ in range(DECISIONS)]


def open_pages(ads: Sequence[LiveAd], *, seed: int = 14, **options: Any) -> list[list[LiveAd]]:
    """What PAGES open pages show over ROTATIONS decisions each, as the SSE stream decides
    them: the first ad, then each rotation away from the ad on screen (ads.streams)."""
    rng = seeded_rng(seed)
    pages = []
    for _ in range(PAGES):
        shown: LiveAd | None = None
        sequence = []
        for _ in range(ROTATIONS):
            shown = decide(ads, rng, shown=shown, **options)
            sequence.append(shown)
        pages.append(sequence)
    return pages


def assert_shares(
    chosen: Sequence[LiveAd], expected: Mapping[int, float], *, key: str = "campaign_id"
) -> None:
    """Each campaign's (or ad's, with ``key="ad_id"``) share of ``chosen`` is within SIGMAS
    binomial standard deviations of ``expected``; a share of 0 or 1 must be exact."""
    total = len(chosen)
    counts = Counter(getattr(ad, key) for ad in chosen)
    assert set(counts) <= set(expected), f"unexpected {key}s: {set(counts) - set(expected)}"
    for value, share in expected.items():
        served = counts[value] / total
        tolerance = SIGMAS * math.sqrt(share * (1 - share) / total)
        assert abs(served - share) <= tolerance + 1e-12, (
            f"{key} {value}: served {served:.4f}, configured {share:.4f} ± {tolerance:.4f}"
        )


def assert_pages_share(
    pages: Sequence[Sequence[LiveAd]], expected: Mapping[int, float], *, key: str = "campaign_id"
) -> None:
    # Pages are independent, so each position's counts are binomial over PAGES; a page's later
    # ads depend on its earlier ones, so the pooled counts are not, hence one check a position.
    for position in range(ROTATIONS):
        assert_shares([page[position] for page in pages], expected, key=key)


# Campaign layouts as (weight, number of ads), campaign ids 1, 2, 3 …
LAYOUTS = {
    "10 with three ads next to 90 with one": ((10, 3), (90, 1)),
    "60 / 40, one ad each": ((60, 1), (40, 1)),
    "50 / 30 / 20 with 1, 4 and 2 ads": ((50, 1), (30, 4), (20, 2)),
}


def layout_ads(layout: Sequence[tuple[int, int]]) -> list[LiveAd]:
    return [
        ad
        for campaign_id, (weight, count) in enumerate(layout, start=1)
        for ad in campaign(campaign_id, weight=weight, ads=count)
    ]


def campaign_shares(layout: Sequence[tuple[int, int]]) -> dict[int, float]:
    total = sum(weight for weight, _ in layout)
    return {campaign_id: weight / total for campaign_id, (weight, _) in enumerate(layout, 1)}


def ad_shares(layout: Sequence[tuple[int, int]]) -> dict[int, float]:
    total = sum(weight for weight, _ in layout)
    return {
        campaign_id * 10 + number: weight / total / count
        for campaign_id, (weight, count) in enumerate(layout, start=1)
        for number in range(1, count + 1)
    }


# --- (a) one decision at a time -----------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_a_campaigns_weight_is_its_share_split_among_its_ads(layout):
    chosen = decisions(layout_ads(layout))
    assert_shares(chosen, campaign_shares(layout))
    assert_shares(chosen, ad_shares(layout), key="ad_id")


def test_an_ineligible_ad_leaves_its_campaigns_share_to_its_other_ads():
    leaderboard = Creative(kind="image", width=728, height=90)  # not a size of the slot
    first, second, third = campaign(1, weight=50, ads=3)
    ads = [first, second, replace(third, creative=leaderboard), *campaign(2, weight=50)]
    chosen = decisions(ads)
    assert_shares(chosen, {1: 0.5, 2: 0.5})
    assert_shares(chosen, {11: 0.25, 12: 0.25, 21: 0.5}, key="ad_id")


def test_caps_pacing_and_frequency_take_a_campaign_out_and_the_others_keep_their_ratio():
    capped = Limits(daily_cap=100, pacing="asap")
    paced = Limits(daily_cap=1000)  # 60 % of the day gone: 620 allowed so far
    once_per_visitor = Limits(frequency_cap=1, frequency_period_seconds=86_400)
    ads = [
        *campaign(1, weight=30, ads=1),
        *campaign(2, weight=20, ads=3),
        *campaign(3, weight=40, ads=2, limits=capped),
        *campaign(4, weight=40, ads=1, limits=paced),
        *campaign(5, weight=40, ads=2, limits=once_per_visitor),
    ]
    delivery = {3: CampaignDelivery(today=100), 4: CampaignDelivery(today=700)}
    chosen = decisions(ads, delivery=delivery, frequency={5: 1})
    assert_shares(chosen, {1: 0.6, 2: 0.4})
    pages = open_pages(ads, delivery=delivery, frequency={5: 1})
    assert_pages_share(pages, {1: 0.6, 2: 0.4})


# --- (b) rotation on an open page ---------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_rotation_keeps_the_configured_shares_at_every_rotation(layout):
    pages = open_pages(layout_ads(layout))
    assert_pages_share(pages, campaign_shares(layout))
    assert_pages_share(pages, ad_shares(layout), key="ad_id")


def repeats(pages: Sequence[Sequence[LiveAd]]) -> Counter[int]:
    """How often each ad was shown again right after itself."""
    return Counter(
        after.ad_id
        for page in pages
        for before, after in pairwise(page)
        if after.ad_id == before.ad_id
    )


def test_rotation_never_repeats_an_ad_when_the_shares_are_equal():
    assert repeats(open_pages(layout_ads(((1, 1), (1, 1), (1, 1))))) == Counter()
    # Campaigns of 25 and 50 with one and two ads: a third of the impressions for each ad.
    assert repeats(open_pages(layout_ads(((25, 1), (50, 2))))) == Counter()


def test_rotation_repeats_only_as_much_as_a_share_above_half_needs():
    repeated = repeats(open_pages(layout_ads(((60, 1), (40, 1)))))
    assert set(repeated) == {11}
    # Showing ad 11 60 % of the time needs 11 after 11 in at least 60 - 40 = 20 % of the
    # transitions; that minimum is what rotation does.
    transitions = PAGES * (ROTATIONS - 1)
    assert repeated[11] / transitions == pytest.approx(0.2, abs=0.02)


def test_rotation_repeats_an_ad_less_often_than_independent_draws_would():
    layout = LAYOUTS["50 / 30 / 20 with 1, 4 and 2 ads"]
    repeated = repeats(open_pages(layout_ads(layout)))
    transitions = PAGES * (ROTATIONS - 1)
    for ad_id, share in ad_shares(layout).items():
        # Independent draws repeat the ad on screen with probability its share.
        assert repeated[ad_id] / transitions < share * share
    # The smallest share (30 % over 4 ads) is never repeated.
    assert not any(repeated[ad_id] for ad_id in (21, 22, 23, 24))


# --- with the CTR model: weight x predicted CTR, by campaign ------------------------------------

MODEL_LAYOUT = ((10, 3), (90, 1))
CTR = {11: 0.10, 12: 0.05, 13: 0.02, 21: 0.01}


def predict(ads: Sequence[LiveAd]) -> list[float]:
    return [CTR[ad.ad_id] for ad in ads]


# Exploiting (80 %): campaign 1 is worth 10 x 10 % (its best ad) against 90 x 1 % for campaign 2,
# so ad 11 is shown; exploring (20 %): the draw by campaign weight, split among the ads.
MODEL_SHARES = {
    11: 0.8 + 0.2 * 0.1 / 3,
    12: 0.2 * 0.1 / 3,
    13: 0.2 * 0.1 / 3,
    21: 0.2 * 0.9,
}


def test_with_the_model_exploration_draws_by_campaign_weight():
    chosen = decisions(layout_ads(MODEL_LAYOUT), predict_ctr=predict, exploration=0.2)
    assert_shares(chosen, MODEL_SHARES, key="ad_id")


def test_with_the_model_rotation_keeps_the_shares_of_its_decisions():
    pages = open_pages(layout_ads(MODEL_LAYOUT), predict_ctr=predict, exploration=0.2)
    assert_pages_share(pages, MODEL_SHARES, key="ad_id")


def test_a_campaigns_number_of_ads_neither_helps_nor_hurts_it_with_the_model():
    # Campaign 1 is worth 10 x 10 % = 1.0 with one ad or three; campaign 2 90 x 1.05 % = 0.945.
    ctr = {11: 0.10, 12: 0.10, 13: 0.10, 21: 0.0105}
    for count in (1, 3):
        ads = layout_ads(((10, count), (90, 1)))
        chosen = decisions(ads, predict_ctr=lambda ads: [ctr[ad.ad_id] for ad in ads])
        assert_shares(chosen, {1: 1.0, 2: 0.0})


# --- (c) priority first, then shares ------------------------------------------------------------


def test_a_higher_priority_wins_outright_and_shares_apply_within_it():
    ads = [
        *campaign(1, weight=60, priority=5),
        *campaign(2, weight=40, ads=2, priority=5),
        *campaign(3, weight=1000, ads=5, priority=1),
    ]
    assert_shares(decisions(ads), {1: 0.6, 2: 0.4, 3: 0.0})
    assert_pages_share(open_pages(ads), {1: 0.6, 2: 0.4, 3: 0.0})


def test_a_lower_priority_serves_only_when_the_higher_ones_cannot():
    done = Limits(lifetime_cap=10)
    ads = [
        *campaign(1, weight=90, ads=2, priority=5, limits=done),
        *campaign(2, weight=30, ads=3, priority=1),
        *campaign(3, weight=10, priority=1),
    ]
    chosen = decisions(ads, delivery={1: CampaignDelivery(lifetime=10)})
    assert_shares(chosen, {1: 0.0, 2: 0.75, 3: 0.25})
    # The ad on screen being of the higher priority does not bring it back, nor skew the rest.
    rng = seeded_rng(5)
    on_screen = ads[0]
    chosen = [
        decide(ads, rng, shown=on_screen, delivery={1: CampaignDelivery(lifetime=10)})
        for _ in range(DECISIONS)
    ]
    assert_shares(chosen, {1: 0.0, 2: 0.75, 3: 0.25})
