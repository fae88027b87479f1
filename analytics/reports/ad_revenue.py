"""What a site's ads earned: per campaign and ad, impressions, clicks, conversions attributed to
it (ads.attribution), revenue by its pricing model and eCPM, over a period in the site's
timezone. Read from the raw ``ad_events`` and ``page_events`` (bots never count, whatever the
query says; filters are refused with a 400: a flat fee is not split by visitor) and the
campaigns' pricing in PostgreSQL.

Revenue, in whole micro-units of the campaign's currency, at the campaign's current rate:

- CPM: impressions x rate / 1,000; CPC: clicks x rate; CPA: conversions x rate; house: 0.
- Flat: the fee spread evenly over the campaign's days (site time, from its start's day to its
  end's, the end excluded at midnight), for its days inside the period; a campaign that runs
  on several sites shares it equally among them (its placements' sites, or with no placements
  every site of its organization that has one). It is reported on every site it runs on, even
  without impressions there. Among its ads it is split in proportion to their impressions.
- eCPM: revenue / impressions x 1,000 (0 without impressions).

Conversions are counted by the time of the goal event; impressions and clicks by their own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ads.attribution import CampaignGoal, attributed_conversions_sql
from ads.models import (
    MICROS_PER_UNIT,
    Ad,
    Campaign,
    CampaignStatus,
    Placement,
    PricingModel,
    to_micros,
)
from analytics.reports.query import Period, ReportQuery, rows
from sites.models import Site


@dataclass
class _Tally:
    impressions: int = 0
    clicks: int = 0
    post_click: int = 0
    post_view: int = 0
    revenue_micros: int = 0

    def add(self, other: _Tally) -> None:
        self.impressions += other.impressions
        self.clicks += other.clicks
        self.post_click += other.post_click
        self.post_view += other.post_view
        self.revenue_micros += other.revenue_micros

    def answer(self) -> dict[str, Any]:
        return {
            "impressions": self.impressions,
            "clicks": self.clicks,
            "conversions": self.post_click + self.post_view,
            "post_click_conversions": self.post_click,
            "post_view_conversions": self.post_view,
            "revenue": round(self.revenue_micros / MICROS_PER_UNIT, 6),
            "revenue_micros": self.revenue_micros,
            "ecpm": round(self.revenue_micros / self.impressions / 1000, 4)
            if self.impressions
            else 0.0,
        }


@dataclass
class _CampaignTally(_Tally):
    ads: dict[int, _Tally] = field(default_factory=dict)

    def ad(self, ad_id: int) -> _Tally:
        return self.ads.setdefault(ad_id, _Tally())


def ad_revenue(query: ReportQuery) -> dict[str, Any]:
    """Revenue of the site's ads in ``query.period`` (module docstring):

    ``{"results": [campaign, ...], "totals": [{"currency", <metrics>}, ...]}``, campaigns by
    revenue, then impressions. A campaign is ``{"campaign": id, "name", "pricing" ("house",
    "cpm", "cpc", "cpa", "flat"), "currency" (ISO 4217), "rate" and "flat_fee" (decimal
    text), <metrics>, "ads": [{"ad": id, "name", <metrics>}, ...]}``; the metrics are
    ``impressions``, ``clicks``, ``conversions`` (= ``post_click_conversions`` +
    ``post_view_conversions``), ``revenue`` (currency units), ``revenue_micros`` (exact) and
    ``ecpm``. A campaign deleted since has empty name, pricing and currency, no revenue, and
    is left out of the totals, which are per currency. Filters cannot apply (revenue is
    shared among sites and ads, not among visitors): any is refused."""
    query.refuse_filters("ad-revenue")
    organization_id = (
        Site.objects.filter(public_id=query.site_id)
        .values_list("organization_id", flat=True)
        .first()
    )
    if organization_id is None:
        return {"results": [], "totals": []}
    campaigns = {
        campaign.pk: campaign
        for campaign in Campaign.objects.filter(
            advertiser__organization_id=organization_id
        ).prefetch_related("placements")
    }
    tallies: dict[int, _CampaignTally] = {}

    def tally(campaign_id: int) -> _CampaignTally:
        return tallies.setdefault(campaign_id, _CampaignTally())

    for campaign_id, ad_id, impressions, clicks in _deliveries(query):
        counted = tally(campaign_id).ad(ad_id)
        counted.impressions, counted.clicks = impressions, clicks
    goals = [CampaignGoal.of(campaign) for campaign in campaigns.values() if campaign.has_goal]
    for campaign_id, ad_id, post_click, post_view in _conversions(query, goals):
        counted = tally(campaign_id).ad(ad_id)
        counted.post_click, counted.post_view = post_click, post_view
    # Of each flat campaign running on this site: how many sites share its fee.
    flat_sites = {
        campaign_id: len(sites)
        for campaign_id, sites in _sites_of_flat_campaigns(
            campaigns.values(), organization_id
        ).items()
        if query.site_id in sites
    }
    for campaign_id in flat_sites:
        if _flat_days_in(campaigns[campaign_id], query.period)[0]:
            tally(campaign_id)

    results = []
    for campaign_id, counted in tallies.items():
        for ad in counted.ads.values():
            counted.add(ad)
        campaign = campaigns.get(campaign_id)
        if campaign is not None:
            _price(counted, campaign, query.period, sites=flat_sites.get(campaign_id, 0))
        results.append((campaign, campaign_id, counted))
    results.sort(key=lambda found: (-found[2].revenue_micros, -found[2].impressions, found[1]))
    names = dict(
        Ad.objects.filter(
            pk__in=[ad_id for _, _, counted in results for ad_id in counted.ads]
        ).values_list("pk", "name")
    )
    return {
        "results": [
            _campaign_answer(campaign, campaign_id, counted, names)
            for campaign, campaign_id, counted in results
        ],
        "totals": _totals(results),
    }


def _deliveries(query: ReportQuery) -> list[tuple[int, int, int, int]]:
    """(campaign, ad, impressions, clicks) of people on the site in the period."""
    sql = """
        SELECT campaign_id, ad_id, countIf(event_type = 'impression'), countIf(event_type = 'click')
        FROM ad_events
        WHERE site_id = {site:String}
          AND timestamp >= {start:DateTime64(3, 'UTC')} AND timestamp < {end:DateTime64(3, 'UTC')}
          AND event_type IN ('impression', 'click') AND is_bot = 0
        GROUP BY campaign_id, ad_id
    """
    found = rows(
        sql,
        {"site": query.site_id, "start": query.period.start_utc, "end": query.period.end_utc},
    )
    return [(int(c), int(a), int(i), int(k)) for c, a, i, k in found]


def _conversions(query: ReportQuery, goals: list[CampaignGoal]) -> list[tuple[int, int, int, int]]:
    """(campaign, ad, post-click conversions, post-view conversions) of the period's goal
    events on the site."""
    if not goals:
        return []
    attributed, parameters = attributed_conversions_sql(
        site_ids=[query.site_id],
        goals=goals,
        start=query.period.start_utc,
        end=query.period.end_utc,
    )
    sql = f"""
        SELECT campaign, ad, countIf(post_click = 1), countIf(post_click = 0)
        FROM ({attributed}) GROUP BY campaign, ad
    """  # noqa: S608 (the attribution's fixed SQL; values are parameters)
    return [(int(c), int(a), int(k), int(v)) for c, a, k, v in rows(sql, parameters)]


def _sites_of_flat_campaigns(
    campaigns: Iterable[Campaign], organization_id: int
) -> dict[int, set[str]]:
    """The sites (public ids) each sold flat campaign runs on: its placements' sites, or every
    site of the organization that has a placement (as ads.publishing decides)."""
    flat = [
        campaign
        for campaign in campaigns
        if campaign.pricing == PricingModel.FLAT
        and campaign.flat_fee
        and campaign.ends_at is not None
        and campaign.status != CampaignStatus.DRAFT
    ]
    if not flat:
        return {}
    placements = dict(
        Placement.objects.filter(site__organization_id=organization_id).values_list(
            "pk", "site__public_id"
        )
    )
    everywhere = set(placements.values())
    return {
        campaign.pk: {
            placements[placement.pk]
            for placement in campaign.placements.all()
            if placement.pk in placements
        }
        or everywhere
        for campaign in flat
    }


def _flat_days_in(campaign: Campaign, period: Period) -> tuple[int, int]:
    """(days of the flat campaign inside the period, days of the campaign), site time; a
    campaign without an end (not a valid flat one, see ads.models) has none."""
    if campaign.ends_at is None:
        return 0, 1
    first = campaign.starts_at.astimezone(period.zone).date()
    # An end at midnight is the end of the day before.
    last = (campaign.ends_at - timedelta(microseconds=1)).astimezone(period.zone).date()
    days = max((last - first).days + 1, 1)
    inside = (min(last, period.end) - max(first, period.start)).days + 1
    return max(inside, 0), days


def _price(counted: _CampaignTally, campaign: Campaign, period: Period, *, sites: int) -> None:
    """Revenue of the campaign and its ads, by its pricing model (module docstring); ``sites``
    share a flat campaign's fee (0 when it does not run on this site)."""
    rate = to_micros(campaign.rate)
    for ad in counted.ads.values():
        ad.revenue_micros = {
            PricingModel.CPM: ad.impressions * rate // 1000,
            PricingModel.CPC: ad.clicks * rate,
            PricingModel.CPA: (ad.post_click + ad.post_view) * rate,
        }.get(PricingModel(campaign.pricing), 0)
    counted.revenue_micros = sum(ad.revenue_micros for ad in counted.ads.values())
    if campaign.pricing == PricingModel.FLAT and sites:
        inside, days = _flat_days_in(campaign, period)
        counted.revenue_micros = to_micros(campaign.flat_fee) * inside // (days * sites)
        _split_by_impressions(counted)


def _split_by_impressions(counted: _CampaignTally) -> None:
    """The campaign's revenue among its ads in proportion to their impressions, in whole
    micro-units that add up to it (largest remainders first)."""
    if not counted.impressions:
        return
    shares = {
        ad_id: divmod(counted.revenue_micros * ad.impressions, counted.impressions)
        for ad_id, ad in counted.ads.items()
    }
    left = counted.revenue_micros - sum(whole for whole, _ in shares.values())
    by_remainder = sorted(shares, key=lambda ad_id: (-shares[ad_id][1], ad_id))
    for rank, ad_id in enumerate(by_remainder):
        counted.ads[ad_id].revenue_micros = shares[ad_id][0] + (1 if rank < left else 0)


def _campaign_answer(
    campaign: Campaign | None, campaign_id: int, counted: _CampaignTally, names: dict[int, str]
) -> dict[str, Any]:
    return {
        "campaign": campaign_id,
        "name": campaign.name if campaign else "",
        "pricing": campaign.pricing if campaign else "",
        "currency": campaign.currency if campaign else "",
        "rate": str(campaign.rate) if campaign else "0",
        "flat_fee": str(campaign.flat_fee) if campaign else "0",
        **counted.answer(),
        "ads": [
            {"ad": ad_id, "name": names.get(ad_id, ""), **ad.answer()}
            for ad_id, ad in sorted(
                counted.ads.items(), key=lambda item: (-item[1].revenue_micros, item[0])
            )
        ],
    }


def _totals(results: list[tuple[Campaign | None, int, _CampaignTally]]) -> list[dict[str, Any]]:
    by_currency: dict[str, _Tally] = {}
    for campaign, _, counted in results:
        if campaign is not None:
            by_currency.setdefault(campaign.currency, _Tally()).add(counted)
    return [
        {"currency": currency, **by_currency[currency].answer()} for currency in sorted(by_currency)
    ]
