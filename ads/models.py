"""Ad authoring, kept in PostgreSQL and edited by marketers in the admin: advertisers, their
campaigns (schedule, priority, pricing and budgets, caps, pacing, targeting, conversion goal)
and ads (image, HTML, native and VAST video creatives: video files of their own, or a third
party's VAST tag they wrap), and the placements of each site.

Money is typed as decimals in the campaign's currency (rates to 1/1000 of a unit, so a CPM
rate divided by 1,000 is a whole number of micro-units) and handled everywhere else as whole
micro-units (``to_micros``): what delivery publishes, the spend counters and the revenue report.

Saving publishes what delivery needs to MongoDB (ads.publishing); nothing here is read while
serving ads.

A campaign runs only on placements of its advertiser's organization: whatever code links a
campaign to placements (the admin, a service, a shell) is refused if they cross, and so is
moving a campaign, an advertiser or a placement to another organization while linked across.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import (
    MaxValueValidator,
    MinValueValidator,
    RegexValidator,
    URLValidator,
)
from django.db import models
from django.db.models.signals import m2m_changed
from django.dispatch import receiver
from django.utils import timezone
from django.utils.crypto import get_random_string
from django.utils.deconstruct import deconstructible

from sites.models import Organization, Site

SIZE_PATTERN = re.compile(r"^[1-9][0-9]{0,3}x[1-9][0-9]{0,3}$")
DEVICES = ("desktop", "mobile", "tablet")


class CreativeKind(models.TextChoices):
    IMAGE = "image", "image banner"
    HTML = "html", "HTML banner"
    NATIVE = "native", "native"
    VIDEO = "video", "video (VAST 4.2)"


@deconstructible
class ChoiceListValidator:
    """A JSON list whose items all match ``pattern`` (e.g. sizes, country codes)."""

    def __init__(self, pattern: str, example: str) -> None:
        self.pattern, self.example = pattern, example

    def __call__(self, value: object) -> None:
        if not isinstance(value, list) or not all(
            isinstance(item, str) and re.fullmatch(self.pattern, item) for item in value
        ):
            raise ValidationError(f"a list such as {self.example}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ChoiceListValidator) and vars(self) == vars(other)


validate_sizes = ChoiceListValidator(SIZE_PATTERN.pattern, '["300x250", "728x90"]')
validate_countries = ChoiceListValidator(r"[A-Z]{2}", '["FR", "DE"] (ISO codes, upper case)')
validate_devices = ChoiceListValidator("|".join(DEVICES), '["mobile", "tablet"]')
validate_formats = ChoiceListValidator(
    "|".join(CreativeKind.values), '["image", "html", "native", "video"]'
)


def new_placement_key() -> str:
    return get_random_string(10, "abcdefghijkmnpqrstuvwxyz23456789")


class Advertiser(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="advertisers"
    )
    name = models.CharField(max_length=200)
    website = models.URLField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        # Only a move to another organization is checked, as for campaigns and placements.
        if self.pk is None or self.organization_id is None:
            return
        stored = Advertiser.objects.filter(pk=self.pk).values_list("organization_id", flat=True)
        if stored.first() in (None, self.organization_id):
            return
        if (
            Placement.objects.filter(campaigns__advertiser=self)
            .exclude(site__organization_id=self.organization_id)
            .exists()
        ):
            raise ValidationError(
                {
                    "organization": "Its campaigns run on placements of its organization: "
                    "remove them from its campaigns before moving it."
                }
            )


class Placement(models.Model):
    """Where ads show on a site: a slot in its pages (or a screen of its app)."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="placements")
    name = models.CharField(max_length=100)
    key = models.CharField(
        max_length=16,
        unique=True,
        default=new_placement_key,
        editable=False,
        help_text="Public key used in the embed code.",
    )
    sizes = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_sizes],
        help_text='Banner sizes it takes, e.g. ["300x250"]; empty takes any size.',
    )
    formats = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_formats],
        help_text='Creative types it takes, e.g. ["image", "html"]; empty takes all.',
    )
    rotation_seconds = models.PositiveIntegerField(
        default=30,
        validators=[MinValueValidator(5), MaxValueValidator(3600)],
        help_text="A new ad after this many seconds on an open page.",
    )

    class Meta:
        ordering = ["site", "name"]

    def __str__(self) -> str:
        return f"{self.site.name} · {self.name}"

    def clean(self) -> None:
        if self.pk is None or self.site_id is None:
            return
        organization_id = self.site.organization_id
        stored = Placement.objects.filter(pk=self.pk).values_list(
            "site__organization_id", flat=True
        )
        if stored.first() in (None, organization_id):
            return
        if self.campaigns.exclude(advertiser__organization_id=organization_id).exists():
            raise ValidationError(
                {
                    "site": "Campaigns of its organization run on it: remove it from them before "
                    "moving it to a site of another organization."
                }
            )


def validate_placements_of_organization(
    *, organization_id: int, placement_ids: Collection[int]
) -> None:
    """Refuse placements on sites of another organization than ``organization_id``: a campaign
    runs on its advertiser's organization's sites only. Names none of them, the ids may be
    another tenant's."""
    foreign = Placement.objects.filter(pk__in=placement_ids).exclude(
        site__organization_id=organization_id
    )
    if foreign.exists():
        raise ValidationError(
            {"placements": "Choose placements on sites of the advertiser's organization only."}
        )


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "draft"
    ACTIVE = "active", "active"
    PAUSED = "paused", "paused"
    ARCHIVED = "archived", "archived"


class Pacing(models.TextChoices):
    EVEN = "even", "evenly over the day / the campaign"
    ASAP = "asap", "as fast as possible"


class FrequencyPeriod(models.IntegerChoices):
    HOUR = 3600, "per hour"
    DAY = 86400, "per day"
    WEEK = 604800, "per week"


class PricingModel(models.TextChoices):
    HOUSE = "house", "not sold (house ads)"
    CPM = "cpm", "CPM: a rate per 1,000 impressions"
    CPC = "cpc", "CPC: a rate per click"
    CPA = "cpa", "CPA: a rate per conversion"
    FLAT = "flat", "flat fee for the whole campaign"


# What one unit of the rate buys, as the validation messages name it.
RATE_UNITS = {
    PricingModel.CPM: "per 1,000 impressions",
    PricingModel.CPC: "per click",
    PricingModel.CPA: "per conversion",
}
MICROS_PER_UNIT = 1_000_000
MAX_ATTRIBUTION_DAYS = 90


def to_micros(amount: Decimal) -> int:
    """An amount of money in whole micro-units of its currency (exact: amounts have at most
    three decimals)."""
    return int(amount * MICROS_PER_UNIT)


def _money(*, decimals: int, help_text: str) -> models.DecimalField[Decimal, Decimal]:
    return models.DecimalField(
        max_digits=12,
        decimal_places=decimals,
        default=Decimal(0),
        validators=[MinValueValidator(Decimal(0))],
        help_text=help_text,
    )


class Campaign(models.Model):
    advertiser = models.ForeignKey(Advertiser, on_delete=models.CASCADE, related_name="campaigns")
    name = models.CharField(max_length=200)
    status = models.CharField(
        max_length=16, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT
    )
    starts_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField(null=True, blank=True)
    priority = models.PositiveSmallIntegerField(
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(10)],
        help_text="1-10: ads of a higher priority always win over lower ones.",
    )
    weight = models.PositiveSmallIntegerField(
        default=10,
        validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="Share among campaigns of the same priority.",
    )
    impression_goal = models.PositiveIntegerField(
        default=0, help_text="Impressions to deliver in all (a budget in impressions); 0 for none."
    )
    daily_cap = models.PositiveIntegerField(default=0, help_text="Impressions per day; 0 for none.")
    lifetime_cap = models.PositiveIntegerField(
        default=0, help_text="Impressions in all; 0 for none."
    )
    frequency_cap = models.PositiveIntegerField(
        default=0, help_text="Impressions per visitor per period; 0 for none."
    )
    frequency_period = models.PositiveIntegerField(
        choices=FrequencyPeriod.choices, default=FrequencyPeriod.DAY
    )
    pacing = models.CharField(max_length=8, choices=Pacing.choices, default=Pacing.EVEN)
    placements = models.ManyToManyField(
        Placement,
        blank=True,
        related_name="campaigns",
        help_text="Where it runs; none selected runs on every placement of the organization.",
    )
    target_countries = models.JSONField(default=list, blank=True, validators=[validate_countries])
    target_devices = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_devices],
        help_text="Only applied to visitors who consented to personalised ads.",
    )
    target_paths = models.JSONField(
        default=list,
        blank=True,
        help_text='Page path patterns, e.g. ["/shoes/*", "/sale"]; empty for every page.',
    )
    target_weekdays = models.JSONField(
        default=list, blank=True, help_text="0 = Monday … 6 = Sunday, site time; empty for all."
    )
    target_hours = models.JSONField(
        default=list, blank=True, help_text="0-23, site time; empty for all hours."
    )
    pricing = models.CharField(
        max_length=8, choices=PricingModel.choices, default=PricingModel.HOUSE
    )
    currency = models.CharField(
        max_length=3,
        default="EUR",
        validators=[RegexValidator(r"^[A-Z]{3}\Z", "An ISO 4217 code such as EUR or USD.")],
        help_text="ISO 4217 code of the rate, fee and budgets.",
    )
    rate = _money(
        decimals=3,
        help_text="CPM: per 1,000 impressions; CPC: per click; CPA: per conversion.",
    )
    flat_fee = _money(
        decimals=2, help_text="Flat: the whole campaign's price, spread over its days."
    )
    budget = _money(decimals=2, help_text="The most it may spend in all; 0 for none.")
    daily_budget = _money(
        decimals=2, help_text="The most it may spend per day (UTC days); 0 for none."
    )
    goal_event = models.CharField(
        max_length=100,
        blank=True,
        help_text='A conversion: this custom event (e.g. "Signup"), on the goal page if one '
        "is given.",
    )
    goal_path = models.CharField(
        max_length=1024,
        blank=True,
        help_text='A page path (e.g. "/thanks"): without a goal event, a view of this page is '
        "the conversion.",
    )
    post_click_days = models.PositiveSmallIntegerField(
        default=30,
        validators=[MaxValueValidator(MAX_ATTRIBUTION_DAYS)],
        help_text="A conversion this many days after a click counts; 0 for none.",
    )
    post_view_days = models.PositiveSmallIntegerField(
        default=1,
        validators=[MaxValueValidator(MAX_ATTRIBUTION_DAYS)],
        help_text="After an impression, when there was no click; 0 for none.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.ends_at and self.starts_at and self.ends_at <= self.starts_at:
            errors["ends_at"] = "The end must come after the start."
        if self.pacing == Pacing.EVEN and self.impression_goal and not self.ends_at:
            errors["ends_at"] = "Even pacing of an impression goal needs an end date."
        if self.daily_cap and self.lifetime_cap and self.daily_cap > self.lifetime_cap:
            errors["daily_cap"] = "The daily cap cannot exceed the lifetime cap."
        if not _int_list(self.target_weekdays, 0, 6):
            errors["target_weekdays"] = "Weekdays are numbers 0 (Monday) to 6 (Sunday)."
        if not _int_list(self.target_hours, 0, 23):
            errors["target_hours"] = "Hours are numbers 0 to 23."
        paths = self.target_paths
        if not isinstance(paths, list) or not all(
            isinstance(path, str) and path.startswith("/") and len(path) <= 200 for path in paths
        ):
            errors["target_paths"] = 'Paths start with "/", e.g. ["/shoes/*"].'
        for name, message in self._pricing_errors().items():
            errors.setdefault(name, message)
        if self._moves_away_from_its_placements():
            errors["advertiser"] = (
                "Its placements are on sites of another organization than this advertiser's: "
                "remove them and save before changing the advertiser."
            )
        if errors:
            raise ValidationError(errors)

    @property
    def has_goal(self) -> bool:
        return bool(self.goal_event or self.goal_path)

    def _pricing_errors(self) -> dict[str, str]:
        """What is wrong with the pricing, budgets and goal, by field."""
        errors: dict[str, str] = {}
        pricing = PricingModel(self.pricing)
        budget_field = "budget" if self.budget else "daily_budget"
        if pricing in RATE_UNITS and not self.rate:
            errors["rate"] = (
                f"A {pricing.value.upper()} campaign needs a rate ({RATE_UNITS[pricing]})."
            )
        if pricing not in RATE_UNITS and self.rate:
            errors["rate"] = "Only CPM, CPC and CPA campaigns have a rate."
        if pricing == PricingModel.FLAT:
            if not self.flat_fee:
                errors["flat_fee"] = "A flat-fee campaign needs a fee."
            if not self.ends_at:
                errors["ends_at"] = (
                    "A flat-fee campaign needs an end date: its fee is spread over its days."
                )
            if self.budget or self.daily_budget:
                # Nothing would ever count toward it: a budget that never binds misleads.
                errors[budget_field] = (
                    "A flat-fee campaign spends nothing per impression or click: cap it in "
                    "impressions, not in money."
                )
        elif self.flat_fee:
            errors["flat_fee"] = "Only a flat-fee campaign has a fee."
        if pricing == PricingModel.HOUSE and (self.budget or self.daily_budget):
            errors[budget_field] = "A house campaign is not sold: it has no budget in money."
        if self.budget and self.daily_budget and self.daily_budget > self.budget:
            errors["daily_budget"] = "The daily budget cannot exceed the budget."
        if self.pacing == Pacing.EVEN and self.budget and not self.ends_at:
            errors.setdefault("ends_at", "Even pacing of a budget needs an end date.")
        if pricing == PricingModel.CPA:
            if not self.has_goal:
                errors["goal_event"] = (
                    "A CPA campaign needs a goal: a custom event, a page path, or both."
                )
            if not (self.post_click_days or self.post_view_days):
                errors["post_click_days"] = (
                    "A CPA campaign needs a post-click or a post-view window: without either "
                    "nothing converts."
                )
        if self.goal_path and not self.goal_path.startswith("/"):
            errors["goal_path"] = 'A goal page path starts with "/", e.g. "/thanks".'
        return errors

    def _moves_away_from_its_placements(self) -> bool:
        # Only a move to another organization is checked: a campaign linked across before this
        # check existed must stay editable, so that its owner can remove the foreign placements
        # (the admin no longer offers them, so saving it does).
        if self.pk is None or self.advertiser_id is None:
            return False
        organization_id = self.advertiser.organization_id
        stored = Campaign.objects.filter(pk=self.pk).values_list(
            "advertiser__organization_id", flat=True
        )
        if stored.first() in (None, organization_id):
            return False
        return self.placements.exclude(site__organization_id=organization_id).exists()


@receiver(m2m_changed, sender=Campaign.placements.through)
def campaign_placements_check(
    *, instance: Campaign | Placement, action: str, pk_set: set[int] | None, **_: Any
) -> None:
    """Refuse linking a campaign to placements of another organization, whichever side the
    link is made from (``campaign.placements.add`` or ``placement.campaigns.add``)."""
    if action != "pre_add" or not pk_set:
        return
    if isinstance(instance, Campaign):
        validate_placements_of_organization(
            organization_id=instance.advertiser.organization_id, placement_ids=pk_set
        )
    elif (
        Campaign.objects.filter(pk__in=pk_set)
        .exclude(advertiser__organization_id=instance.site.organization_id)
        .exists()
    ):
        raise ValidationError("Only campaigns of the placement's organization can run on it.")


def _int_list(value: object, low: int, high: int) -> bool:
    return isinstance(value, list) and all(
        isinstance(item, int) and not isinstance(item, bool) and low <= item <= high
        for item in value
    )


# The player fetches a third party's VAST tag from the viewer's device: https only, as players
# on https pages need, and so that the request does not travel in clear.
validate_vast_tag_url = URLValidator(schemes=["https"])


class AdStatus(models.TextChoices):
    ACTIVE = "active", "active"
    PAUSED = "paused", "paused"


class Ad(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="ads")
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=8, choices=AdStatus.choices, default=AdStatus.ACTIVE)
    kind = models.CharField(max_length=8, choices=CreativeKind.choices, default=CreativeKind.IMAGE)
    click_url = models.URLField(
        max_length=2048,
        blank=True,
        help_text="Where a click takes the visitor (a wrapper ad's clicks go where its VAST says).",
    )
    width = models.PositiveIntegerField(default=0, help_text="Banners: width in pixels.")
    height = models.PositiveIntegerField(default=0, help_text="Banners: height in pixels.")
    image_url = models.URLField(max_length=2048, blank=True, help_text="Image and native ads.")
    html = models.TextField(
        blank=True,
        help_text="HTML banners: sanitised on save (no scripts, styles inline) and shown in a "
        "sandboxed frame.",
    )
    title = models.CharField(max_length=100, blank=True, help_text="Native and video ads.")
    text = models.CharField(max_length=300, blank=True, help_text="Native ads.")
    call_to_action = models.CharField(max_length=30, blank=True, help_text="Native ads.")
    duration_seconds = models.PositiveIntegerField(default=0, help_text="Video ads.")
    # Checked in clean(), not by a URLField's validator: one message that says what to enter.
    vast_tag_url = models.CharField(
        "VAST tag URL",
        max_length=2048,
        blank=True,
        help_text="Video ads: a third party's VAST tag (https). The ad is then a wrapper: "
        "players play what that VAST answers, with Naboria's tracking; it has no video files "
        "or click URL of its own. Served only to viewers who consented to ads.",
    )
    version = models.PositiveIntegerField(default=1, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["campaign", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_wrapper(self) -> bool:
        """A video ad that plays a third party's VAST (VAST 4.2 Wrapper) instead of files of
        its own."""
        return self.kind == CreativeKind.VIDEO and bool(self.vast_tag_url)

    def clean(self) -> None:
        needed: dict[str, str] = {
            CreativeKind.IMAGE: {
                "image_url": "an image URL",
                "width": "a width",
                "height": "a height",
            },
            CreativeKind.HTML: {"html": "the HTML", "width": "a width", "height": "a height"},
            CreativeKind.NATIVE: {
                "title": "a title",
                "text": "a text",
                "image_url": "an image URL",
                "call_to_action": "a call to action",
            },
            CreativeKind.VIDEO: {"title": "a title", "duration_seconds": "a duration"},
        }[CreativeKind(self.kind)]
        # A wrapper needs nothing more: the third party's VAST has the title, duration, media
        # and click-through.
        needed = {} if self.is_wrapper else {"click_url": "a click URL", **needed}
        errors = {
            name: f"A {self.get_kind_display()} ad needs {what}."
            for name, what in needed.items()
            if not getattr(self, name)
        }
        errors.update(self._vast_tag_errors())
        if errors:
            raise ValidationError(errors)

    def _vast_tag_errors(self) -> dict[str, str]:
        if not self.vast_tag_url:
            return {}
        if self.kind != CreativeKind.VIDEO:
            return {"vast_tag_url": "Only a video ad has a VAST tag URL."}
        errors: dict[str, str] = {}
        try:
            validate_vast_tag_url(self.vast_tag_url)
        except ValidationError:
            errors["vast_tag_url"] = (
                "A VAST tag URL is the third party's absolute https:// address of its VAST, "
                "e.g. https://ads.example/vast?id=42."
            )
        if self.click_url:
            errors["click_url"] = (
                "A wrapper ad has no click URL: clicks go where the third party's VAST sends "
                "them. Leave it empty."
            )
        # The files as saved: the admin deletes those marked for deletion only once this form
        # is valid, so a hosted ad becomes a wrapper in two saves.
        if "vast_tag_url" not in errors and self.pk is not None and self.video_files.exists():
            errors["vast_tag_url"] = (
                "This ad plays video files of its own: delete them and save, then give it a "
                "VAST tag URL."
            )
        return errors

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


class VideoFile(models.Model):
    """One rendition of a video ad (VAST MediaFile)."""

    ad = models.ForeignKey(Ad, on_delete=models.CASCADE, related_name="video_files")
    url = models.URLField(max_length=2048)
    mime_type = models.CharField(
        max_length=32,
        choices=[("video/mp4", "MP4"), ("video/webm", "WebM")],
        default="video/mp4",
    )
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    bitrate = models.PositiveIntegerField(default=0, help_text="kbit/s; 0 if unknown.")

    def __str__(self) -> str:
        return f"{self.mime_type} {self.width}x{self.height}"

    def clean(self) -> None:
        # In the admin's inline, ``ad`` holds the values posted with it: a tag URL set in the
        # same form counts.
        try:
            ad = self.ad
        except Ad.DoesNotExist:
            return
        if ad.is_wrapper:
            raise ValidationError(
                "A wrapper ad (with a VAST tag URL) plays the third party's VAST, not video "
                "files: remove its VAST tag URL to give it files of its own."
            )
