"""What ad delivery knows about a live ad: the denormalised form published to MongoDB (one
document per live ad) and held in every web process's in-memory snapshot.

Built from the authoring models by ads.publishing, read by ads.decisioning (which ad to show),
the renderers (SSE payloads, listings, VAST) and tracking. Plain frozen dataclasses: the
decision function stays pure and cheap, and the same values round-trip through MongoDB
(``to_document`` / ``from_document``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Creative:
    """One of: image banner, sanitised HTML banner, native, VAST video (its own media files, or
    a wrapper of a third party's VAST tag)."""

    kind: str  # "image" | "html" | "native" | "video"
    width: int = 0
    height: int = 0
    click_url: str = ""
    image_url: str = ""
    html: str = ""  # already sanitised (nh3) when published
    title: str = ""
    text: str = ""
    call_to_action: str = ""
    duration_seconds: int = 0
    # video: [{"url", "mime_type", "width", "height", "bitrate"}]
    media_files: tuple[dict[str, Any], ...] = ()
    # video: the third party's VAST that a wrapper points players to ("" for a video of its
    # own); documents published before wrappers existed have none.
    vast_tag_url: str = ""

    @property
    def is_wrapper(self) -> bool:
        return self.kind == "video" and bool(self.vast_tag_url)

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass(frozen=True, slots=True)
class Targeting:
    """Empty means "any"."""

    placement_ids: frozenset[int] = frozenset()
    countries: frozenset[str] = frozenset()  # ISO 3166-1 alpha-2, upper case
    devices: frozenset[str] = frozenset()  # "desktop" | "mobile" | "tablet"
    path_patterns: tuple[str, ...] = ()  # fnmatch patterns on the page path: "/shoes/*"
    weekdays: frozenset[int] = frozenset()  # 0 = Monday … 6 = Sunday, in the site's timezone
    hours: frozenset[int] = frozenset()  # 0 … 23, in the site's timezone


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps, budgets and pacing of the ad's campaign (0 = no limit)."""

    impression_goal: int = 0  # impressions to deliver in all
    daily_cap: int = 0  # impressions per day for the campaign
    lifetime_cap: int = 0  # impressions in all for the campaign
    frequency_cap: int = 0  # impressions per visitor per frequency period
    frequency_period_seconds: int = 0
    pacing: str = "even"  # "even" | "asap"
    budget_micros: int = 0  # the most the campaign may spend in all, in micro-units
    daily_budget_micros: int = 0  # the most it may spend per (UTC) day


@dataclass(frozen=True, slots=True)
class Pricing:
    """How the ad's campaign is sold: what each counted event adds to its spend."""

    model: str = "house"  # "house" | "cpm" | "cpc" | "cpa" | "flat" (ads.models.PricingModel)
    rate_micros: int = 0  # CPM: per 1,000 impressions; CPC: per click; CPA: per conversion

    @property
    def impression_micros(self) -> int:
        """What one counted impression spends (whole: rates have at most three decimals)."""
        return self.rate_micros // 1000 if self.model == "cpm" else 0

    @property
    def click_micros(self) -> int:
        return self.rate_micros if self.model == "cpc" else 0

    @property
    def event_micros(self) -> int:
        """The price of one billable event: what a budget can be overshot by at most, per
        process, between two reads of the counters."""
        return self.impression_micros if self.model == "cpm" else self.rate_micros


@dataclass(frozen=True, slots=True)
class LiveAd:
    ad_id: int
    campaign_id: int
    advertiser_id: int
    organization_id: int
    site_ids: frozenset[int]
    priority: int  # higher wins
    # The campaign's: its share among the campaigns of the same priority, split among its ads.
    weight: int
    starts_at: datetime  # aware, UTC
    ends_at: datetime | None  # aware, UTC
    creative: Creative
    targeting: Targeting = field(default_factory=Targeting)
    limits: Limits = field(default_factory=Limits)
    pricing: Pricing = field(default_factory=Pricing)
    version: int = 1  # raised on every publish of this ad

    def to_document(self) -> dict[str, Any]:
        document = asdict(self)
        for key in ("site_ids",):
            document[key] = sorted(document[key])
        targeting = document["targeting"]
        for key, value in targeting.items():
            targeting[key] = sorted(value) if isinstance(value, frozenset) else list(value)
        document["creative"]["media_files"] = list(document["creative"]["media_files"])
        return document

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> LiveAd:
        targeting = document["targeting"]
        creative = document["creative"]
        return cls(
            ad_id=document["ad_id"],
            campaign_id=document["campaign_id"],
            advertiser_id=document["advertiser_id"],
            organization_id=document["organization_id"],
            site_ids=frozenset(document["site_ids"]),
            priority=document["priority"],
            weight=document["weight"],
            starts_at=_aware(document["starts_at"]),
            ends_at=_aware(document["ends_at"]) if document["ends_at"] else None,
            creative=Creative(
                **{**creative, "media_files": tuple(creative.get("media_files", ()))}
            ),
            targeting=Targeting(
                placement_ids=frozenset(targeting["placement_ids"]),
                countries=frozenset(targeting["countries"]),
                devices=frozenset(targeting["devices"]),
                path_patterns=tuple(targeting["path_patterns"]),
                weekdays=frozenset(targeting["weekdays"]),
                hours=frozenset(targeting["hours"]),
            ),
            limits=Limits(**document["limits"]),
            # Documents published before pricing existed have none until the next publish.
            pricing=Pricing(**document.get("pricing", {})),
            version=document["version"],
        )


def _aware(moment: datetime) -> datetime:
    # MongoDB keeps UTC without the zone; it comes back naive.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class PlacementSlot:
    """A placement as delivery sees it."""

    placement_id: int
    site_id: int
    key: str  # public key used in the embed code and URLs
    sizes: frozenset[str]  # "300x250"; empty = any size
    formats: frozenset[str]  # creative kinds it accepts; empty = any
    rotation_seconds: int = 30
    timezone: str = "UTC"
    site_public_id: str = ""


@dataclass(frozen=True, slots=True)
class DeliveryContext:
    """Who asks, where and when. ``personalised`` is True only when the visitor's recorded
    decision grants ads personalisation; without it only context may be used."""

    site_id: int
    path: str
    country: str
    device: str
    now: datetime  # aware
    personalised: bool
    # impressions of this visitor per campaign within its frequency period (cookieless: the
    # day's anonymous id, so limits still hold without consent)
    frequency: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CampaignDelivery:
    """Impressions a campaign has been served and what it has spent (micro-units), as counted
    by the delivery counters; "today" is the UTC day."""

    today: int = 0
    lifetime: int = 0
    spent_today: int = 0
    spent: int = 0
