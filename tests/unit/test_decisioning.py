"""Ad decisioning: eligibility rules, priority, rotation, weights and CTR ranking with
exploration.

Pure functions, so no database: every input is built here from plain dataclasses.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ads.decisioning import choose_ad, ineligibility
from ads.delivery import (
    CampaignDelivery,
    Creative,
    DeliveryContext,
    Limits,
    LiveAd,
    PlacementSlot,
    Targeting,
)

# A Monday; 15:30 in Europe/Paris, 23:30 in Asia/Tokyo.
NOW = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)
SIX_AM = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # a quarter of the UTC day


def make_ad(
    ad_id: int = 1,
    *,
    campaign_id: int | None = None,
    targeting: Targeting | None = None,
    limits: Limits | None = None,
    creative: Creative | None = None,
    **fields: Any,
) -> LiveAd:
    """A live ad on site 1, placement 10 (untargeted), image 300x250, started yesterday."""
    values: dict[str, Any] = {
        "ad_id": ad_id,
        "campaign_id": ad_id if campaign_id is None else campaign_id,
        "advertiser_id": 1,
        "organization_id": 1,
        "site_ids": frozenset({1}),
        "priority": 1,
        "weight": 1,
        "starts_at": NOW - timedelta(days=1),
        "ends_at": None,
        "creative": creative or Creative(kind="image", width=300, height=250),
        "targeting": targeting or Targeting(),
        "limits": limits or Limits(),
    }
    values.update(fields)
    return LiveAd(**values)


def make_slot(**fields: Any) -> PlacementSlot:
    """Placement 10 on site 1, accepting 300x250 images, in UTC."""
    values: dict[str, Any] = {
        "placement_id": 10,
        "site_id": 1,
        "key": "pl_top",
        "sizes": frozenset({"300x250"}),
        "formats": frozenset({"image"}),
    }
    values.update(fields)
    return PlacementSlot(**values)


def make_context(**fields: Any) -> DeliveryContext:
    """A consenting mobile visitor from France on /shoes/red at NOW."""
    values: dict[str, Any] = {
        "site_id": 1,
        "path": "/shoes/red",
        "country": "FR",
        "device": "mobile",
        "now": NOW,
        "personalised": True,
    }
    values.update(fields)
    return DeliveryContext(**values)


def seeded_rng(seed: int) -> random.Random:
    # Reproducible draws are the point here; nothing security-related depends on them.
    return random.Random(seed)  # noqa: S311


def reason_for(
    ad: LiveAd,
    *,
    slot: PlacementSlot | None = None,
    context: DeliveryContext | None = None,
    delivery: CampaignDelivery | None = None,
) -> str | None:
    return ineligibility(
        ad,
        slot=slot or make_slot(),
        context=context or make_context(),
        delivery=delivery or CampaignDelivery(),
    )


def choose(
    ads: list[LiveAd],
    *,
    seed: int = 0,
    rng: random.Random | None = None,
    slot: PlacementSlot | None = None,
    context: DeliveryContext | None = None,
    delivery: Mapping[int, CampaignDelivery] | None = None,
    avoid: frozenset[int] = frozenset(),
    predict_ctr: Callable[[Sequence[LiveAd]], Sequence[float]] | None = None,
    exploration: float = 0.0,
) -> LiveAd | None:
    return choose_ad(
        ads=ads,
        slot=slot or make_slot(),
        context=context or make_context(),
        delivery=delivery or {},
        rng=rng or seeded_rng(seed),
        avoid=avoid,
        predict_ctr=predict_ctr,
        exploration=exploration,
    )


def draw_counts(ads: list[LiveAd], draws: int, **options: Any) -> Counter[int]:
    rng = seeded_rng(20261123)
    counts: Counter[int] = Counter()
    for _ in range(draws):
        chosen = choose(ads, rng=rng, **options)
        assert chosen is not None
        counts[chosen.ad_id] += 1
    return counts


# --- eligibility, one rule at a time ---------------------------------------------------------


def test_the_default_ad_is_eligible():
    assert reason_for(make_ad()) is None


@pytest.mark.parametrize(
    ("ad", "slot", "expected"),
    [
        pytest.param(make_ad(site_ids=frozenset({2})), make_slot(), "other site", id="site"),
        pytest.param(
            make_ad(site_ids=frozenset({2, 1})), make_slot(), None, id="one-of-several-sites"
        ),
        pytest.param(
            make_ad(targeting=Targeting(placement_ids=frozenset({11}))),
            make_slot(),
            "placement not targeted",
            id="other-placement",
        ),
        pytest.param(
            make_ad(targeting=Targeting(placement_ids=frozenset({10, 11}))),
            make_slot(),
            None,
            id="targeted-placement",
        ),
    ],
)
def test_site_and_placement(ad, slot, expected):
    assert reason_for(ad, slot=slot) == expected


@pytest.mark.parametrize(
    ("creative", "slot", "expected"),
    [
        pytest.param(
            Creative(kind="html", width=300, height=250), make_slot(), "format", id="format"
        ),
        pytest.param(
            Creative(kind="html", width=300, height=250),
            make_slot(formats=frozenset()),
            None,
            id="any-format",
        ),
        pytest.param(Creative(kind="image", width=728, height=90), make_slot(), "size", id="size"),
        pytest.param(
            Creative(kind="image", width=728, height=90),
            make_slot(sizes=frozenset()),
            None,
            id="any-size",
        ),
        pytest.param(
            Creative(kind="native"),
            make_slot(formats=frozenset({"native"})),
            None,
            id="native-adapts",
        ),
        pytest.param(
            Creative(kind="video", width=1920, height=1080),
            make_slot(formats=frozenset({"video"})),
            None,
            id="video-adapts",
        ),
    ],
)
def test_format_and_size(creative, slot, expected):
    assert reason_for(make_ad(creative=creative), slot=slot) == expected


@pytest.mark.parametrize(
    ("starts_at", "ends_at", "expected"),
    [
        pytest.param(NOW + timedelta(seconds=1), None, "not started", id="not-started"),
        pytest.param(NOW, None, None, id="starts-now"),
        pytest.param(NOW - timedelta(days=2), NOW, "ended", id="ends-now"),
        pytest.param(NOW - timedelta(days=2), NOW - timedelta(hours=1), "ended", id="ended"),
        pytest.param(NOW - timedelta(days=2), NOW + timedelta(seconds=1), None, id="running"),
    ],
)
def test_schedule(starts_at, ends_at, expected):
    assert reason_for(make_ad(starts_at=starts_at, ends_at=ends_at)) == expected


@pytest.mark.parametrize(
    ("targeting", "expected"),
    [
        pytest.param(Targeting(weekdays=frozenset({1, 2})), "weekday", id="other-weekday"),
        pytest.param(Targeting(weekdays=frozenset({0})), None, id="monday"),
        pytest.param(Targeting(hours=frozenset({13, 15})), "hour", id="other-hour"),
        pytest.param(Targeting(hours=frozenset({14})), None, id="hour-14"),
    ],
)
def test_day_parting_in_utc(targeting, expected):
    assert reason_for(make_ad(targeting=targeting)) == expected


def test_hours_are_evaluated_in_the_slots_timezone():
    at_fifteen = make_ad(targeting=Targeting(hours=frozenset({15})))
    paris = make_slot(timezone="Europe/Paris")
    assert reason_for(at_fifteen, slot=paris) is None  # 14:30 UTC is 15:30 in Paris
    assert reason_for(at_fifteen, slot=make_slot()) == "hour"
    at_fourteen = make_ad(targeting=Targeting(hours=frozenset({14})))
    assert reason_for(at_fourteen, slot=paris) == "hour"


def test_weekdays_are_evaluated_in_the_slots_timezone():
    sunday_evening_utc = make_context(now=datetime(2026, 11, 22, 23, 30, tzinfo=UTC))
    mondays = make_ad(targeting=Targeting(weekdays=frozenset({0})))
    tokyo = make_slot(timezone="Asia/Tokyo")  # already Monday 08:30 there
    assert reason_for(mondays, slot=tokyo, context=sunday_evening_utc) is None
    assert reason_for(mondays, slot=make_slot(), context=sunday_evening_utc) == "weekday"


@pytest.mark.parametrize(
    ("targeting", "context", "expected"),
    [
        pytest.param(Targeting(countries=frozenset({"DE"})), make_context(), "country", id="de"),
        pytest.param(Targeting(countries=frozenset({"DE", "FR"})), make_context(), None, id="fr"),
        pytest.param(
            Targeting(countries=frozenset({"FR"})),
            make_context(country="fr"),
            None,
            id="country-case",
        ),
        pytest.param(
            Targeting(countries=frozenset({"FR"})), make_context(country=""), "country", id="none"
        ),
        pytest.param(Targeting(path_patterns=("/hats/*",)), make_context(), "path", id="hats"),
        pytest.param(
            Targeting(path_patterns=("/hats/*", "/shoes/*")), make_context(), None, id="shoes"
        ),
        pytest.param(
            Targeting(path_patterns=("/Shoes/*",)), make_context(), "path", id="path-case"
        ),
        pytest.param(Targeting(path_patterns=("/shoes",)), make_context(), "path", id="exact"),
        pytest.param(Targeting(devices=frozenset({"desktop"})), make_context(), "device", id="pc"),
        pytest.param(
            Targeting(devices=frozenset({"desktop", "mobile"})), make_context(), None, id="mobile"
        ),
    ],
)
def test_context_targeting(targeting, context, expected):
    assert reason_for(make_ad(targeting=targeting), context=context) == expected


def test_device_targeting_needs_consent_even_when_the_device_matches():
    mobile_only = make_ad(targeting=Targeting(devices=frozenset({"mobile"})))
    cookieless = make_context(personalised=False)
    assert reason_for(mobile_only, context=cookieless) == "device targeting needs consent"
    assert reason_for(make_ad(), context=cookieless) is None


def test_country_and_path_targeting_work_without_consent():
    targeting = Targeting(countries=frozenset({"FR"}), path_patterns=("/shoes/*",))
    ad = make_ad(targeting=targeting)
    assert reason_for(ad, context=make_context(personalised=False)) is None
    assert reason_for(ad, context=make_context(personalised=False, country="DE")) == "country"
    assert reason_for(ad, context=make_context(personalised=False, path="/hats/x")) == "path"


@pytest.mark.parametrize(
    ("limits", "delivery", "expected"),
    [
        pytest.param(Limits(lifetime_cap=100), CampaignDelivery(lifetime=99), None, id="life-99"),
        pytest.param(
            Limits(lifetime_cap=100), CampaignDelivery(lifetime=100), "lifetime cap", id="life"
        ),
        pytest.param(
            Limits(impression_goal=100, pacing="asap"),
            CampaignDelivery(lifetime=99),
            None,
            id="goal-99",
        ),
        pytest.param(
            Limits(impression_goal=100, pacing="asap"),
            CampaignDelivery(lifetime=100),
            "impression goal reached",
            id="goal",
        ),
        pytest.param(
            Limits(daily_cap=100, pacing="asap"), CampaignDelivery(today=99), None, id="day-99"
        ),
        pytest.param(
            Limits(daily_cap=100, pacing="asap"),
            CampaignDelivery(today=100, lifetime=100),
            "daily cap",
            id="day",
        ),
        pytest.param(Limits(), CampaignDelivery(today=10**9, lifetime=10**9), None, id="no-caps"),
    ],
)
def test_campaign_caps(limits, delivery, expected):
    assert reason_for(make_ad(limits=limits), delivery=delivery) == expected


@pytest.mark.parametrize("personalised", [True, False])
def test_frequency_cap_applies_with_or_without_consent(personalised):
    ad = make_ad(campaign_id=7, limits=Limits(frequency_cap=3, frequency_period_seconds=86400))
    seen_twice = make_context(personalised=personalised, frequency={7: 2})
    seen_thrice = make_context(personalised=personalised, frequency={7: 3})
    other_campaign = make_context(personalised=personalised, frequency={8: 30})
    assert reason_for(ad, context=seen_twice) is None
    assert reason_for(ad, context=seen_thrice) == "frequency cap"
    assert reason_for(ad, context=other_campaign) is None


# --- pacing ------------------------------------------------------------------------------------


def test_even_pacing_holds_back_a_campaign_ahead_of_the_day_while_asap_serves_on():
    quarter_of_the_day = make_context(now=SIX_AM)
    half_the_cap = CampaignDelivery(today=500, lifetime=500)
    even = make_ad(limits=Limits(daily_cap=1000, pacing="even"))
    asap = make_ad(limits=Limits(daily_cap=1000, pacing="asap"))
    assert reason_for(even, context=quarter_of_the_day, delivery=half_the_cap) == "pacing"
    assert reason_for(asap, context=quarter_of_the_day, delivery=half_the_cap) is None


@pytest.mark.parametrize(
    ("today", "expected"),
    [(0, None), (250, None), (269, None), (270, "pacing")],  # 1000 * 25% + 2% margin = 270
)
def test_even_daily_pacing_allows_the_elapsed_share_plus_a_margin(today, expected):
    even = make_ad(limits=Limits(daily_cap=1000))
    delivered = CampaignDelivery(today=today, lifetime=today)
    assert reason_for(even, context=make_context(now=SIX_AM), delivery=delivered) == expected


def test_even_pacing_margin_is_at_least_one_impression_at_the_start_of_the_day():
    midnight = make_context(now=datetime(2026, 11, 23, tzinfo=UTC))
    small_cap = make_ad(limits=Limits(daily_cap=10))
    assert reason_for(small_cap, context=midnight, delivery=CampaignDelivery(today=0)) is None
    assert reason_for(small_cap, context=midnight, delivery=CampaignDelivery(today=1)) == "pacing"


def test_the_day_for_pacing_is_the_slots_day():
    even = make_ad(limits=Limits(daily_cap=1000))
    delivered = CampaignDelivery(today=100, lifetime=100)
    six_am_utc = make_context(now=SIX_AM)
    # 06:00 UTC is 01:00 in New York: 1/24 of its day, so 100 is already ahead of pace there.
    assert reason_for(even, context=six_am_utc, delivery=delivered) is None
    new_york = make_slot(timezone="America/New_York")
    assert reason_for(even, slot=new_york, context=six_am_utc, delivery=delivered) == "pacing"


@pytest.mark.parametrize(
    ("lifetime", "pacing", "expected"),
    # a quarter of the flight gone: 1000 * 25% + 1% margin = 260
    [(200, "even", None), (259, "even", None), (260, "even", "pacing"), (600, "asap", None)],
)
def test_goal_pacing_spreads_the_goal_over_the_flight(lifetime, pacing, expected):
    ad = make_ad(
        starts_at=NOW - timedelta(days=1),
        ends_at=NOW + timedelta(days=3),
        limits=Limits(impression_goal=1000, pacing=pacing),
    )
    assert reason_for(ad, delivery=CampaignDelivery(lifetime=lifetime)) == expected


def test_goal_without_an_end_is_not_paced():
    ad = make_ad(limits=Limits(impression_goal=1000))
    assert reason_for(ad, delivery=CampaignDelivery(lifetime=999)) is None


# --- choosing ----------------------------------------------------------------------------------


def test_nothing_eligible_gives_none():
    assert choose([]) is None
    assert choose([make_ad(1, site_ids=frozenset({2})), make_ad(2, ends_at=NOW)]) is None


def test_highest_priority_wins_whatever_the_weights():
    low = make_ad(1, priority=1, weight=1000)
    high = make_ad(2, priority=5, weight=1)
    for seed in range(50):
        assert choose([low, high], seed=seed) == high


def test_an_ineligible_high_priority_ad_leaves_the_lower_priority_one():
    low = make_ad(1, priority=1)
    high_elsewhere = make_ad(2, priority=5, site_ids=frozenset({2}))
    assert choose([high_elsewhere, low]) == low


def test_counters_are_looked_up_by_campaign_and_missing_ones_count_as_nothing():
    capped = make_ad(1, campaign_id=7, priority=5, limits=Limits(daily_cap=10, pacing="asap"))
    fallback = make_ad(2, campaign_id=8, priority=1, limits=Limits(daily_cap=10, pacing="asap"))
    assert choose([capped, fallback]) == capped
    assert choose([capped, fallback], delivery={7: CampaignDelivery(today=10)}) == fallback


def test_weights_are_respected():
    counts = draw_counts([make_ad(1, weight=3), make_ad(2, weight=1)], 10_000)
    assert counts[1] / 10_000 == pytest.approx(0.75, abs=0.02)


def test_a_zero_weight_is_never_drawn_unless_every_weight_is_zero():
    counts = draw_counts([make_ad(1, weight=0), make_ad(2, weight=1)], 500)
    assert counts == Counter({2: 500})
    all_zero = draw_counts([make_ad(1, weight=0), make_ad(2, weight=0)], 1000)
    assert all_zero[1] / 1000 == pytest.approx(0.5, abs=0.07)


def test_the_ad_on_screen_is_rotated_away_from_when_the_shares_are_equal():
    # With unequal shares it may come back, as they need (tests/unit/test_ad_shares.py).
    ads = [make_ad(1), make_ad(2), make_ad(3)]
    counts = draw_counts(ads, 300, avoid=frozenset({1}))
    assert counts[1] == 0
    assert counts[2] > 0
    assert counts[3] > 0


def test_an_avoided_ad_is_still_shown_when_it_is_the_only_one():
    assert choose([make_ad(1)], avoid=frozenset({1})) == make_ad(1)
    counts = draw_counts([make_ad(1), make_ad(2)], 300, avoid=frozenset({1, 2}))
    assert set(counts) == {1, 2}


def test_avoid_does_not_bring_in_a_lower_priority():
    current = make_ad(1, priority=5)
    lower = make_ad(2, priority=1)
    assert choose([current, lower], avoid=frozenset({1})) == current


def ctr_by_id(values: dict[int, float]) -> Callable[[Sequence[LiveAd]], list[float]]:
    return lambda ads: [values[ad.ad_id] for ad in ads]


def test_without_a_model_the_draw_follows_the_weights():
    counts = draw_counts([make_ad(1, weight=3), make_ad(2, weight=1)], 10_000)
    assert counts[1] / 10_000 == pytest.approx(0.75, abs=0.02)


def test_a_model_ranks_by_weight_times_predicted_ctr():
    ads = [make_ad(1, weight=3), make_ad(2, weight=1), make_ad(3, weight=1)]
    # 3 x 1 % < 1 x 4 %: the lighter ad wins on expected clicks.
    ranked = draw_counts(ads, 300, predict_ctr=ctr_by_id({1: 0.01, 2: 0.04, 3: 0.02}))
    assert ranked == Counter({2: 300})
    ranked = draw_counts(ads, 300, predict_ctr=ctr_by_id({1: 0.02, 2: 0.04, 3: 0.02}))
    assert ranked == Counter({1: 300})


def test_exploration_share_draws_by_weight():
    ads = [make_ad(1, weight=1), make_ad(2, weight=1), make_ad(3, weight=2)]
    predict = ctr_by_id({1: 0.05, 2: 0.01, 3: 0.01})
    counts = draw_counts(ads, 20_000, predict_ctr=predict, exploration=0.2)
    # Exploit (80 %) always picks ad 1; explore (20 %) draws 1:1:2 by weight.
    assert counts[1] / 20_000 == pytest.approx(0.8 + 0.2 * 0.25, abs=0.01)
    assert counts[2] / 20_000 == pytest.approx(0.2 * 0.25, abs=0.01)
    assert counts[3] / 20_000 == pytest.approx(0.2 * 0.5, abs=0.01)
    assert draw_counts(ads, 2_000, predict_ctr=predict, exploration=1.0)[1] / 2_000 < 0.3


def test_tied_predictions_are_drawn_by_weight():
    ads = [make_ad(1, weight=1), make_ad(2, weight=3), make_ad(3, weight=1)]
    counts = draw_counts(ads, 10_000, predict_ctr=ctr_by_id({1: 0.03, 2: 0.005, 3: 0.03}))
    assert set(counts) == {1, 3}
    assert counts[1] / 10_000 == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_a_non_positive_or_non_finite_prediction_never_wins(bad):
    predict = ctr_by_id({1: bad, 2: 0.01})
    # Both orders, since a broken comparison tends to fall through to the first or last ad.
    assert draw_counts([make_ad(1), make_ad(2)], 300, predict_ctr=predict) == Counter({2: 300})
    assert draw_counts([make_ad(2), make_ad(1)], 300, predict_ctr=predict) == Counter({2: 300})


def test_without_any_usable_prediction_the_draw_follows_the_weights():
    ads = [make_ad(1, weight=3), make_ad(2, weight=1)]
    counts = draw_counts(ads, 10_000, predict_ctr=ctr_by_id({1: float("nan"), 2: 0.0}))
    assert counts[1] / 10_000 == pytest.approx(0.75, abs=0.02)


def test_predictions_are_asked_once_per_decision_for_the_finalists_only():
    batches: list[list[int]] = []

    def predict(ads: Sequence[LiveAd]) -> list[float]:
        batches.append([ad.ad_id for ad in ads])
        return [0.01] * len(ads)

    ads = [make_ad(1, priority=5), make_ad(2, priority=5), make_ad(3), make_ad(4, ends_at=NOW)]
    choose(ads, predict_ctr=predict)
    assert batches == [[1, 2]]


def test_the_same_seed_gives_the_same_choices():
    ads = [make_ad(ad_id, weight=ad_id) for ad_id in range(1, 6)]

    def sequence(seed: int) -> list[int]:
        rng = seeded_rng(seed)
        picks = [choose(ads, rng=rng) for _ in range(100)]
        return [ad.ad_id for ad in picks if ad is not None]

    assert sequence(42) == sequence(42)
    assert sequence(42) != sequence(43)
    assert len(set(sequence(42))) > 1
