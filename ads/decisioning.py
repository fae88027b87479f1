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
filters with it, keeps the highest priority and gives each remaining ad (finalist) its share:

- Shares as sold. A campaign's weight is its share among the finalists' campaigns, split
  evenly among its finalists: a weight-10 campaign with three ads next to a weight-90 campaign
  with one gets 10 % of the impressions, 3.3 % each ad, whatever the number of ads. A campaign
  that is capped, paced or not targeted drops out and the others keep their ratios; an ad of a
  campaign that does not fit the slot leaves its part to the campaign's other ads.
- With the CTR model (its predictions come in through a batch hook, see ads.ranking), the
  decision is epsilon-greedy: the exploration share is drawn as above, the rest goes to the
  highest weight x predicted CTR, the weight being the campaign's, not divided among its ads.
- Rotation. The SSE stream re-decides at every rotation interval and passes the ad on screen
  as ``avoid``. Always skipping it would skew the shares (two campaigns sold 60/40 would
  alternate 50/50), and no rule can both keep 60/40 and never repeat an ad. The shares as sold
  win: the decision is a Metropolised Gibbs step on the shares p (J. S. Liu, "Peskun's theorem
  and a modified discrete-state Gibbs sampler", Biometrika 83, 1996): from the ad on screen i,
  another finalist j is proposed with probability p_j / (1 - p_i) and accepted with
  probability min(1, (1 - p_i) / (1 - p_j)), else i is shown again (as a new impression).
  Flows balance (p_i x P(i to j) = p_i p_j min(1/(1 - p_i), 1/(1 - p_j)) = p_j x P(j to i)), so
  p is kept, and since a page's first ad is drawn from p, every rotation of every page is
  distributed as p: the shares hold however long pages stay open. An ad is shown twice in a
  row only when another finalist has a smaller share (not zero), never more often than with
  independent draws; with equal shares never, and with two ads exactly as often as the larger
  share needs (60/40: in 20 % of the rotations).
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
    if ad.creative.is_wrapper and not context.personalised:
        # A wrapper makes the player fetch a third party's VAST from the viewer's device.
        return "third-party VAST needs consent"
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
    if limits.budget_micros and delivery.spent >= limits.budget_micros:
        return "over its budget"
    if limits.daily_budget_micros and delivery.spent_today >= limits.daily_budget_micros:
        return "over its daily budget"
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
    """Whether an evenly paced campaign has already served (or spent) more than its share so
    far: of its day for a daily cap or budget, of its flight for an impression goal or budget.
    Each share is the straight line plus a margin, at least one impression (or the price of
    one billable event), so a small total is not held back right after each event."""
    limits = ad.limits
    elapsed = clock.day_fraction
    if limits.daily_cap:
        cap = limits.daily_cap
        if delivery.today >= cap * elapsed + max(1.0, cap * DAILY_PACING_MARGIN):
            return True
    if limits.daily_budget_micros:
        budget = limits.daily_budget_micros
        margin = max(ad.pricing.event_micros, budget * DAILY_PACING_MARGIN)
        if delivery.spent_today >= budget * elapsed + margin:
            return True
    if (limits.impression_goal or limits.budget_micros) and ad.ends_at is not None:
        flight = ad.ends_at - ad.starts_at
        flown = (now - ad.starts_at) / flight if flight > timedelta(0) else 1.0
        elapsed = min(max(flown, 0.0), 1.0)
        goal = limits.impression_goal
        if goal and delivery.lifetime >= goal * elapsed + max(1.0, goal * GOAL_PACING_MARGIN):
            return True
        budget = limits.budget_micros
        if budget:
            margin = max(ad.pricing.event_micros, budget * GOAL_PACING_MARGIN)
            if delivery.spent >= budget * elapsed + margin:
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
    served nothing yet. Among the eligible ads only the highest priority competes (the
    finalists), each with its share of the decision (see the module docstring): its campaign's
    weight over the weights of the finalists' campaigns, split evenly among the campaign's
    finalists. Weights that are not positive and finite get no share, unless no finalist's
    campaign has one: then every campaign counts the same, so the slot is not left empty.

    With ``predict_ctr`` (the CTR model, ads.ranking) the decision is epsilon-greedy: a share
    ``exploration`` of it is that weighted draw (exploring: every eligible ad keeps getting
    impressions, so the next model learns about it), the rest goes to the finalist with the
    highest ``ad.weight * predicted CTR`` (exploiting; ties are shared as in the weighted draw).
    ``predict_ctr`` is called once per decision with all finalists (one batched prediction),
    never for ineligible or outranked ads, nor when a single ad is eligible. Products that are
    not positive and finite never win; if no finalist has one, it is the weighted draw alone.

    ``avoid`` holds the ad on screen that the decision rotates away from (the SSE stream's):
    the rotation step of the module docstring, which keeps each finalist's share. An avoided ad
    that is not a finalist changes nothing; several avoided finalists are stepped away from as
    one (the guarantee on shares is for one). ``rng`` is the decision's only randomness.
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

    if len(finalists) <= 1:
        return finalists[0] if finalists else None
    shares = _shares_by_weight(finalists)
    if predict_ctr is not None:
        best = _best_by_expected_clicks(finalists, predict_ctr(finalists))
        if best:
            shares = _epsilon_greedy(finalists, shares, best, exploration)
    on_screen = [index for index, ad in enumerate(finalists) if ad.ad_id in avoid]
    chosen = _rotation_step(shares, on_screen, rng) if on_screen else _draw(shares, rng)
    return finalists[chosen]


def _shares_by_weight(ads: Sequence[LiveAd]) -> list[float]:
    """Each ad's probability in the weighted draw among ``ads``: its campaign's weight over the
    weights of all their campaigns, split evenly among the campaign's ads in ``ads``."""
    # A plain dict: collections.Counter's type checks cost more than the rest of the shares.
    ads_per_campaign: dict[int, int] = {}
    for ad in ads:
        ads_per_campaign[ad.campaign_id] = ads_per_campaign.get(ad.campaign_id, 0) + 1
    # Publishing copies the campaign's weight onto each of its ads. Were they ever to differ (a
    # hand-made snapshot), the campaign weighs the mean of its ads' weights.
    masses = [_drawable_weight(ad) / ads_per_campaign[ad.campaign_id] for ad in ads]
    total = math.fsum(masses)
    if total > 0:
        return [mass / total for mass in masses]
    return [1 / len(ads_per_campaign) / ads_per_campaign[ad.campaign_id] for ad in ads]


def _drawable_weight(ad: LiveAd) -> float:
    weight = float(ad.weight)
    return weight if weight > 0 and math.isfinite(weight) else 0.0


def _best_by_expected_clicks(finalists: list[LiveAd], predictions: Sequence[float]) -> list[int]:
    """The indices of the finalists with the highest weight x predicted CTR (several on a tie);
    empty when no product is positive and finite (a broken or missing prediction).

    ``ad.weight`` is the campaign's weight, not divided among its ads: a campaign is worth its
    weight x the predicted CTR of its best ad, the one it would show, so the number of ads a
    campaign has neither helps nor hurts it here either."""
    best: list[int] = []
    best_value = 0.0
    for index, (ad, predicted) in enumerate(zip(finalists, predictions, strict=True)):
        value = ad.weight * predicted
        if not (value > 0 and math.isfinite(value)):
            continue
        if value > best_value:
            best, best_value = [index], value
        elif value == best_value:
            best.append(index)
    return best


def _epsilon_greedy(
    finalists: list[LiveAd], by_weight: list[float], best: list[int], exploration: float
) -> list[float]:
    """The shares of an epsilon-greedy decision: ``exploration`` of the weighted draw, the rest
    on the ``best`` finalists, shared among them as the weighted draw shares campaigns."""
    # Clamped, NaN as no exploration, so that the shares stay probabilities.
    explore = 1.0 if exploration >= 1.0 else exploration if exploration > 0.0 else 0.0
    shares = [explore * share for share in by_weight]
    tied = _shares_by_weight([finalists[index] for index in best])
    for index, share in zip(best, tied, strict=True):
        shares[index] += (1.0 - explore) * share
    return shares


def _draw(shares: Sequence[float], rng: random.Random) -> int:
    """An index drawn with probability proportional to ``shares`` (at least one positive)."""
    threshold = rng.random() * math.fsum(shares)
    cumulative = 0.0
    last_drawable = 0
    for index, share in enumerate(shares):
        if share <= 0:
            continue
        cumulative += share
        last_drawable = index
        if threshold < cumulative:
            return index
    # Float rounding can leave the threshold a hair above the running sum.
    return last_drawable


def _rotation_step(shares: Sequence[float], on_screen: Sequence[int], rng: random.Random) -> int:
    """The Metropolised Gibbs step away from the finalists ``on_screen`` (module docstring).

    Another finalist j is proposed with probability share_j / (1 - share on screen) and
    accepted with probability min(1, (1 - share on screen) / (1 - share_j)); otherwise the ad on
    screen stays.
    """
    on_screen_share = math.fsum(shares[index] for index in on_screen)
    others = list(shares)
    for index in on_screen:
        others[index] = 0.0
    # With no other finalist that has a share, the ad on screen stays.
    if any(share > 0 for share in others):
        proposed = _draw(others, rng)
        # The acceptance test multiplied out: no division, and always true when share_j is at
        # least the share on screen.
        if rng.random() * (1.0 - shares[proposed]) < 1.0 - on_screen_share:
            return proposed
    # Only reached with a positive share on screen: with none, every proposal is accepted.
    staying = [0.0] * len(shares)
    for index in on_screen:
        staying[index] = shares[index]
    return _draw(staying, rng)
