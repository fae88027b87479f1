"""Which live ad to show in a placement, here and now.

Called on every ad request by the SSE stream, the listing endpoint and the VAST endpoint in
``ads/``, each passing the ads and campaign counters from its in-process snapshot of published
ads (see ``ads.delivery``). It runs once per request with ~200 live ads, so it has to stay well
under a couple of milliseconds.

The module is pure: no I/O, no Django, no database, no global state. Time comes only from
``DeliveryContext.now`` and randomness only from the ``random.Random`` the caller passes, so
a decision can be replayed and tested deterministically. The only cache is of immutable
``ZoneInfo`` objects.

``ineligibility`` explains why one ad may not be shown (None when it may); ``choose_ad``
filters with it and then picks by priority, rotation, and weight or predicted CTR x weight
(the CTR model's predictions come in through a batch hook, see ads.ranking).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from fnmatch import fnmatchcase
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ads.delivery import CampaignDelivery, DeliveryContext, LiveAd, PlacementSlot

__all__ = ["choose_ad", "ineligibility"]

# Creatives that lay themselves out in whatever box they are given, so slot sizes don't apply.
SIZE_ADAPTIVE_KINDS = frozenset({"native", "video"})

# Even pacing lets a campaign run slightly ahead of the straight line, otherwise a campaign
# with a small cap would be held back right after every impression and at the start of a day.
DAILY_PACING_MARGIN = 0.02
GOAL_PACING_MARGIN = 0.01

_NO_DELIVERY = CampaignDelivery()


@lru_cache(maxsize=256)
def placement_zone(name: str) -> ZoneInfo:
    # A placement with a bad timezone must still serve ads; UTC is the least surprising guess.
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


@dataclass(frozen=True, slots=True)
class _LocalClock:
    """``now`` as seen in the slot's timezone: computed once per decision, not once per ad."""

    weekday: int
    hour: int
    day_fraction: float  # of the local calendar day elapsed, DST-length days included


def _local_clock(now: datetime, timezone_name: str) -> _LocalClock:
    zone = placement_zone(timezone_name)
    local_now = now.astimezone(zone)
    # Subtracting aware datetimes of the same tzinfo ignores their offsets, so go through UTC
    # to get the real length of 23- and 25-hour days.
    midnight = datetime.combine(local_now.date(), time(), tzinfo=zone).astimezone(UTC)
    next_midnight = datetime.combine(
        local_now.date() + timedelta(days=1), time(), tzinfo=zone
    ).astimezone(UTC)
    elapsed = now.astimezone(UTC) - midnight
    day_fraction = elapsed / (next_midnight - midnight)
    return _LocalClock(
        weekday=local_now.weekday(),
        hour=local_now.hour,
        day_fraction=min(max(day_fraction, 0.0), 1.0),
    )


def ineligibility(
    ad: LiveAd,
    *,
    slot: PlacementSlot,
    context: DeliveryContext,
    delivery: CampaignDelivery,
) -> str | None:
    """None when ``ad`` may be shown in ``slot`` for ``context``, else a short reason.

    The reasons are meant for people and tests ("size", "daily cap", "pacing", …), not for
    branching on in code.
    """
    return _ineligibility(
        ad,
        slot=slot,
        context=context,
        delivery=delivery,
        clock=_local_clock(context.now, slot.timezone),
    )


def _ineligibility(
    ad: LiveAd,
    *,
    slot: PlacementSlot,
    context: DeliveryContext,
    delivery: CampaignDelivery,
    clock: _LocalClock,
) -> str | None:
    # Ordered cheapest and most selective first: most ads of a busy snapshot are for other
    # sites or placements, and fnmatch and pacing arithmetic are the dearest checks.
    targeting = ad.targeting
    if slot.site_id not in ad.site_ids:
        return "other site"
    if targeting.placement_ids and slot.placement_id not in targeting.placement_ids:
        return "placement not targeted"

    creative = ad.creative
    if slot.formats and creative.kind not in slot.formats:
        return "format"
    if slot.sizes and creative.kind not in SIZE_ADAPTIVE_KINDS and creative.size not in slot.sizes:
        return "size"

    now = context.now
    if now < ad.starts_at:
        return "not started"
    if ad.ends_at is not None and now >= ad.ends_at:
        return "ended"
    if targeting.weekdays and clock.weekday not in targeting.weekdays:
        return "weekday"
    if targeting.hours and clock.hour not in targeting.hours:
        return "hour"

    if targeting.countries and not _country_matches(context.country, targeting.countries):
        return "country"
    if targeting.devices:
        # Without a personalisation grant the device must not steer the choice at all, so an
        # ad that depends on it is out rather than shown untargeted.
        if not context.personalised:
            return "device targeting needs consent"
        if context.device not in targeting.devices:
            return "device"
    if targeting.path_patterns and not any(
        fnmatchcase(context.path, pattern) for pattern in targeting.path_patterns
    ):
        return "path"

    limits = ad.limits
    if limits.lifetime_cap and delivery.lifetime >= limits.lifetime_cap:
        return "lifetime cap"
    if limits.impression_goal and delivery.lifetime >= limits.impression_goal:
        return "impression goal reached"
    if limits.daily_cap and delivery.today >= limits.daily_cap:
        return "daily cap"
    # Counted per visitor even without consent (the day's anonymous id), so it always applies.
    if limits.frequency_cap and context.frequency.get(ad.campaign_id, 0) >= limits.frequency_cap:
        return "frequency cap"

    if limits.pacing != "asap" and _ahead_of_pace(ad, now=now, delivery=delivery, clock=clock):
        return "pacing"
    return None


def _country_matches(country: str, countries: frozenset[str]) -> bool:
    visitor_country = country.upper()
    # Published targeting is upper case already; the fallback only guards hand-made data.
    return visitor_country in countries or any(
        code.upper() == visitor_country for code in countries
    )


def _ahead_of_pace(
    ad: LiveAd, *, now: datetime, delivery: CampaignDelivery, clock: _LocalClock
) -> bool:
    """Whether an evenly paced campaign has already served more than its share so far."""
    limits = ad.limits
    if limits.daily_cap:
        daily_allowance = limits.daily_cap * clock.day_fraction + max(
            1.0, limits.daily_cap * DAILY_PACING_MARGIN
        )
        if delivery.today >= daily_allowance:
            return True
    if limits.impression_goal and ad.ends_at is not None:
        flight = ad.ends_at - ad.starts_at
        flown = (now - ad.starts_at) / flight if flight > timedelta(0) else 1.0
        goal_allowance = limits.impression_goal * min(max(flown, 0.0), 1.0) + max(
            1.0, limits.impression_goal * GOAL_PACING_MARGIN
        )
        if delivery.lifetime >= goal_allowance:
            return True
    return False


def choose_ad(
    *,
    ads: Sequence[LiveAd],
    slot: PlacementSlot,
    context: DeliveryContext,
    delivery: Mapping[int, CampaignDelivery],
    rng: random.Random,
    avoid: frozenset[int] = frozenset(),
    predict_ctr: Callable[[Sequence[LiveAd]], Sequence[float]] | None = None,
    exploration: float = 0.0,
) -> LiveAd | None:
    """The ad to show in ``slot`` for ``context``, or None when no ad is eligible.

    ``delivery`` holds each campaign's counters by campaign id; a campaign missing from it has
    served nothing yet. Among the eligible ads only the highest priority competes. ``avoid``
    holds the ad ids to rotate away from (the ad on screen now): they are skipped unless
    nothing else of that priority is eligible.

    Without ``predict_ctr`` the winner is drawn with probability proportional to ``ad.weight``.
    With it (the CTR model, ads.ranking), the decision is epsilon-greedy: with probability
    ``exploration`` it is that same weighted draw (exploring: every eligible ad keeps getting
    impressions, so the next model learns about it), otherwise the finalist with the highest
    ``ad.weight * predicted CTR`` wins (exploiting; ties are drawn by weight). ``predict_ctr``
    is called once per decision with all finalists (one batched prediction) and never for
    ineligible or outranked ads. Products that are not positive and finite never win, and if
    no finalist has one the decision falls back to the weighted draw. Weights that are not
    positive are never drawn, unless no finalist has a positive weight: then all finalists are
    drawn uniformly, so the slot is not left empty.
    """
    clock = _local_clock(context.now, slot.timezone)
    best_priority: int | None = None
    finalists: list[LiveAd] = []
    for ad in ads:
        # An outranked ad can't win, so skip the eligibility work for it.
        if best_priority is not None and ad.priority < best_priority:
            continue
        reason = _ineligibility(
            ad,
            slot=slot,
            context=context,
            delivery=delivery.get(ad.campaign_id, _NO_DELIVERY),
            clock=clock,
        )
        if reason is not None:
            continue
        if best_priority is None or ad.priority > best_priority:
            best_priority = ad.priority
            finalists = [ad]
        else:
            finalists.append(ad)

    if not finalists:
        return None
    if avoid:
        fresh = [ad for ad in finalists if ad.ad_id not in avoid]
        if fresh:
            finalists = fresh
    if len(finalists) == 1:
        return finalists[0]
    # One draw decides explore or exploit whenever a model is given, so a replay with the same
    # seed makes the same choices.
    if predict_ctr is not None and rng.random() >= exploration:
        best = _best_by_expected_clicks(finalists, predict_ctr(finalists))
        if best:
            return best[0] if len(best) == 1 else _draw_by_weight(best, rng=rng)
    return _draw_by_weight(finalists, rng=rng)


def _best_by_expected_clicks(finalists: list[LiveAd], predictions: Sequence[float]) -> list[LiveAd]:
    """The finalists with the highest weight x predicted CTR (several on a tie); empty when no
    product is positive and finite (a broken or missing prediction)."""
    best: list[LiveAd] = []
    best_value = 0.0
    for ad, predicted in zip(finalists, predictions, strict=True):
        value = ad.weight * predicted
        if not (value > 0 and math.isfinite(value)):
            continue
        if value > best_value:
            best, best_value = [ad], value
        elif value == best_value:
            best.append(ad)
    return best


def _draw_by_weight(finalists: list[LiveAd], *, rng: random.Random) -> LiveAd:
    weights = [_drawable_weight(ad) for ad in finalists]
    total = math.fsum(weights)
    if not total > 0:
        return rng.choice(finalists)
    threshold = rng.random() * total
    cumulative = 0.0
    last_drawable = finalists[0]
    for ad, weight in zip(finalists, weights, strict=True):
        if weight <= 0:
            continue
        cumulative += weight
        last_drawable = ad
        if threshold < cumulative:
            return ad
    # Float rounding can leave the threshold a hair above the running sum.
    return last_drawable


def _drawable_weight(ad: LiveAd) -> float:
    weight = float(ad.weight)
    return weight if weight > 0 and math.isfinite(weight) else 0.0
