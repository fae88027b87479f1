"""Consent management: each site's banner (texts per language, purposes, look, IAB TCF and Google
Consent Mode settings) and the record of every decision a visitor made.

With IAB TCF on, the banner also carries the publisher's restrictions (TcfPublisherRestriction)
and reads the IAB Global Vendor List stored by ``manage.py refresh_vendor_list``
(GlobalVendorList, in consent.gvl, read through consent.vendor_list).

Marketers edit banners in the admin; the tracker loader (ingest.views) serves them to browsers;
the /consent endpoint (ingest.endpoints → consent.services) writes the records, which are the
proof of consent exported from the admin and mirrored to ClickHouse for consent-rate reports.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils.deconstruct import deconstructible
from django.utils.timezone import now

# Re-exported: the consent app's models are all reachable from here.
from consent.gvl import GlobalVendorList as GlobalVendorList
from consent.vendor_list import unknown_vendor_ids
from sites.models import Site

CONSENT_MODE_SIGNALS = ("ad_storage", "analytics_storage", "ad_user_data", "ad_personalization")
color_validator = RegexValidator(r"^#[0-9a-fA-F]{6}$", "a colour as #rrggbb")
language_validator = RegexValidator(r"^[a-z]{2}$", "a two-letter ISO 639-1 code, e.g. en")


@deconstructible
class IdListValidator:
    """A JSON list of integer ids, optionally each within ``low``..``high``."""

    def __init__(self, name: str, low: int | None = None, high: int | None = None) -> None:
        self.name, self.low, self.high = name, low, high

    def __call__(self, value: object) -> None:
        if not isinstance(value, list) or not all(
            isinstance(item, int) and not isinstance(item, bool) for item in value
        ):
            raise ValidationError(f"a list of {self.name}s, e.g. [1, 7]")
        low, high = self.low, self.high
        if low is not None and high is not None and any(not low <= i <= high for i in value):
            raise ValidationError(f"each {self.name} must be between {low} and {high}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdListValidator) and vars(self) == vars(other)


def validate_signals(value: object) -> None:
    if not isinstance(value, list) or any(item not in CONSENT_MODE_SIGNALS for item in value):
        raise ValidationError(
            f"a list of Consent Mode signals among {', '.join(CONSENT_MODE_SIGNALS)}"
        )


class BannerPosition(models.TextChoices):
    BOTTOM = "bottom", "bar at the bottom"
    TOP = "top", "bar at the top"
    CENTER = "center", "dialog in the middle"


class ConsentModeType(models.TextChoices):
    ADVANCED = (
        "advanced",
        "advanced: Google tags load at once, denied by default (cookieless pings)",
    )
    BASIC = "basic", "basic: Google tags held until the visitor consents"


class RegionRule(models.TextChoices):
    """What the banner does for visitors outside the EEA, the UK and Switzerland (where it always
    asks first, opt-in)."""

    OPT_IN = "opt_in", "ask first (opt-in), as in the EEA"
    OPT_OUT = "opt_out", "show the banner as notice; granted until the visitor refuses (opt-out)"
    NO_BANNER = "no_banner", "no banner; granted (the floating link still lets visitors refuse)"


class ConsentBanner(models.Model):
    site = models.OneToOneField(Site, on_delete=models.CASCADE, related_name="consent_banner")
    version = models.PositiveIntegerField(
        default=1,
        editable=False,
        help_text="Raised when purposes or texts change: visitors are asked again.",
    )
    content_fingerprint = models.CharField(max_length=64, blank=True, editable=False)
    # What visitors agree to beyond wording (purpose keys, TCF purposes, signals, vendors): a
    # change of it is always material (consent.services.consent_banner_refresh_version).
    scope_fingerprint = models.CharField(max_length=64, blank=True, editable=False)
    reprompt_version = models.PositiveIntegerField(
        default=1,
        editable=False,
        help_text="Decisions given to an earlier version are asked again (the latest material "
        "change); a minor edit raises the version without asking again.",
    )
    consent_expiry_months = models.PositiveSmallIntegerField(
        default=12,
        validators=[MinValueValidator(1), MaxValueValidator(24)],
        help_text="A decision is asked again after this many months (EDPB and CNIL: at most "
        "13 months is the common reading; 12 by default).",
    )
    outside_regulated_regions = models.CharField(
        max_length=16,
        choices=RegionRule.choices,
        default=RegionRule.OPT_IN,
        help_text="Visitors in the EEA, the UK and Switzerland are always asked first.",
    )
    default_language = models.CharField(max_length=2, default="en", validators=[language_validator])
    position = models.CharField(
        max_length=16, choices=BannerPosition.choices, default=BannerPosition.BOTTOM
    )
    background_color = models.CharField(
        max_length=7, default="#ffffff", validators=[color_validator]
    )
    text_color = models.CharField(max_length=7, default="#1f2328", validators=[color_validator])
    accent_color = models.CharField(max_length=7, default="#2f5bd3", validators=[color_validator])
    google_consent_mode = models.BooleanField(
        default=True, help_text="Send gtag('consent', 'default'/'update', …) signals."
    )
    # Basic by default: advanced mode lets Google's tags send cookieless pings (with the
    # visitor's IP address) before any consent, which a privacy-first default should not do.
    consent_mode_type = models.CharField(
        max_length=8, choices=ConsentModeType.choices, default=ConsentModeType.BASIC
    )
    tcf_enabled = models.BooleanField(
        default=False, help_text="Expose __tcfapi with an IAB TCF v2.2 TC string."
    )
    tcf_cmp_id = models.PositiveIntegerField(
        default=0, help_text="The CMP id the IAB registered for this installation."
    )
    tcf_cmp_version = models.PositiveIntegerField(default=1)
    tcf_publisher_country = models.CharField(
        max_length=2,
        default="AA",
        help_text="ISO 3166-1 alpha-2 country of the publisher (AA when unknown).",
    )
    tcf_vendor_ids = models.JSONField(
        default=list,
        blank=True,
        validators=[IdListValidator("vendor id")],
        help_text="IAB Global Vendor List ids of the vendors this site works with.",
    )
    tcf_non_standard_texts = models.JSONField(
        default=dict,
        blank=True,
        help_text="Your own texts for TCF purposes instead of the IAB's standard ones, e.g. "
        '{"1": {"name": "…", "description": "…"}}; empty: the standard texts (useNonStandardTexts '
        "false in the TC string).",
    )
    record_retention_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Days decision records are kept, then purged; empty: the installation's "
        "CONSENT_RECORD_RETENTION_DAYS.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "consent banner"

    def __str__(self) -> str:
        return f"consent banner of {self.site}"

    def clean(self) -> None:
        if self.tcf_enabled and not 2 <= self.tcf_cmp_id < 4096:
            raise ValidationError({"tcf_cmp_id": "TCF needs the CMP id the IAB assigned (2-4095)."})
        unknown = unknown_vendor_ids(self.tcf_vendor_ids or [])
        if unknown:
            raise ValidationError({"tcf_vendor_ids": f"not in the vendor list: {unknown}"})
        texts = self.tcf_non_standard_texts
        if not isinstance(texts, dict) or not all(
            key.isdigit()
            and 1 <= int(key) <= 11
            and isinstance(text, dict)
            and set(text) == {"name", "description"}
            and all(isinstance(value, str) and value for value in text.values())
            for key, text in texts.items()
        ):
            raise ValidationError(
                {"tcf_non_standard_texts": 'use {"1": {"name": "…", "description": "…"}} (1-11)'}
            )


class RestrictionType(models.IntegerChoices):
    """The TCF's publisher restriction types, with their values in the TC string."""

    NOT_ALLOWED = 0, "purpose flatly not allowed"
    REQUIRE_CONSENT = 1, "require consent"
    REQUIRE_LEGITIMATE_INTEREST = 2, "require legitimate interest"


# TCF 2.2: no legitimate interest for purposes 1, 3, 4, 5 and 6.
LEGITIMATE_INTEREST_PURPOSES = (2, 7, 8, 9, 10, 11)


class TcfPublisherRestriction(models.Model):
    """What the publisher allows vendors for one TCF purpose, written into every TC string
    (PubRestrictionEntry) and applied to what the banner shows and signals for them."""

    banner = models.ForeignKey(
        ConsentBanner, on_delete=models.CASCADE, related_name="tcf_restrictions"
    )
    purpose = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(11)], help_text="TCF purpose 1-11."
    )
    restriction_type = models.PositiveSmallIntegerField(choices=RestrictionType.choices)
    vendor_ids = models.JSONField(
        default=list,
        blank=True,
        validators=[IdListValidator("vendor id")],
        help_text="The vendors it applies to, among the banner's; empty: all of them.",
    )

    class Meta:
        ordering = ["purpose"]
        constraints = [
            models.UniqueConstraint(
                fields=["banner", "purpose"], name="one_tcf_restriction_per_purpose"
            )
        ]

    def __str__(self) -> str:
        return f"purpose {self.purpose}: {self.get_restriction_type_display()}"

    def clean(self) -> None:
        if (
            self.restriction_type == RestrictionType.REQUIRE_LEGITIMATE_INTEREST
            and self.purpose not in LEGITIMATE_INTEREST_PURPOSES
        ):
            raise ValidationError(
                {"restriction_type": "TCF 2.2 allows no legitimate interest for this purpose."}
            )
        banner_vendors = self.banner.tcf_vendor_ids if self.banner_id else []
        strangers = sorted(set(self.vendor_ids or []) - set(banner_vendors or []))
        if strangers:
            raise ValidationError({"vendor_ids": f"not among the banner's vendors: {strangers}"})


class ConsentPurpose(models.Model):
    """A purpose visitors grant or deny. The keys ``analytics`` and ``ads`` are the ones the
    tracker and the ad server obey; others are passed on to the site's own tags."""

    banner = models.ForeignKey(ConsentBanner, on_delete=models.CASCADE, related_name="purposes")
    key = models.SlugField(max_length=32)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    required = models.BooleanField(
        default=False, help_text="Strictly necessary: always on, shown without a switch."
    )
    tcf_purposes = models.JSONField(
        default=list,
        blank=True,
        validators=[IdListValidator("TCF purpose id", 1, 11)],
        help_text="IAB TCF purposes (1-11) this purpose stands for.",
    )
    consent_mode_signals = models.JSONField(default=list, blank=True, validators=[validate_signals])
    translations = models.JSONField(
        default=dict,
        blank=True,
        help_text='Other languages: {"fr": {"name": "…", "description": "…"}}.',
    )
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["banner", "key"], name="one_purpose_per_key")
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        translations = self.translations
        if not isinstance(translations, dict) or not all(
            isinstance(language, str)
            and len(language) == 2
            and isinstance(texts, dict)
            and set(texts) <= {"name", "description"}
            and all(isinstance(text, str) for text in texts.values())
            for language, texts in translations.items()
        ):
            raise ValidationError({"translations": 'use {"fr": {"name": "…", "description": "…"}}'})


# The labels of the TCF parts of the banner (consent/tcf-ui.js), in English; each BannerText
# may translate any of them in tcf_labels. "{n}" is the number of vendors.
TCF_LABELS = {
    "partners": "See our {n} partners",
    "purposes": "Purposes",
    "consent": "Consent",
    "object": "Object",
    "legInt": "Legitimate interest",
    "consentPurposes": "Purposes (consent)",
    "specialPurposes": "Special purposes",
    "features": "Features",
    "specialFeatures": "Special features",
    "data": "Data categories",
    "retention": "Retention",
    "days": "days",
    "seconds": "seconds",
    "storage": "Device storage",
    "cookies": "cookies up to",
    "session": "the session",
    "refresh": "renewed on each visit",
    "other": "other storage (e.g. local storage)",
    "disclosure": "Storage details",
    "privacy": "Privacy policy",
    "legIntClaim": "Legitimate interest claim",
}


class BannerText(models.Model):
    """The banner's texts in one language."""

    banner = models.ForeignKey(ConsentBanner, on_delete=models.CASCADE, related_name="texts")
    language = models.CharField(max_length=2, validators=[language_validator])
    title = models.CharField(max_length=120, default="Your privacy")
    body = models.TextField(
        default="We use cookies and similar technologies to measure our audience and show "
        "relevant ads. Choose what you allow; you can change it at any time."
    )
    accept_label = models.CharField(max_length=40, default="Accept all")
    reject_label = models.CharField(max_length=40, default="Reject all")
    customize_label = models.CharField(max_length=40, default="Choose")
    save_label = models.CharField(max_length=40, default="Save my choices")
    settings_label = models.CharField(
        max_length=40, default="Privacy settings", help_text="The floating link to reopen it."
    )
    vendors_label = models.CharField(max_length=60, default="Partners (IAB TCF vendors)")
    tcf_notice = models.TextField(
        default="We and our {n} partners store and access information on your device and "
        "process personal data such as unique identifiers and browsing data for the purposes "
        "below. Some partners do so on the basis of their legitimate interest, without asking "
        "for your consent: you can object to it in the settings. Your choices apply to this "
        "site only and you can change them at any time with the Privacy settings link.",
        help_text="TCF first layer; {n} is the number of vendors.",
    )
    tcf_labels = models.JSONField(
        default=dict,
        blank=True,
        help_text="TCF second-layer labels in this language, over the English defaults "
        '(TCF_LABELS in consent.models), e.g. {"object": "Objecter"}.',
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["banner", "language"], name="one_text_per_language")
        ]

    def __str__(self) -> str:
        return f"{self.language} texts"

    def clean(self) -> None:
        labels = self.tcf_labels
        if not isinstance(labels, dict) or not all(
            key in TCF_LABELS and isinstance(value, str) and value for key, value in labels.items()
        ):
            raise ValidationError({"tcf_labels": f"texts for some of: {', '.join(TCF_LABELS)}"})


class SnapshotImmutable(Exception):
    """A banner snapshot is evidence: it is never changed or deleted on its own."""


class ConsentBannerSnapshot(models.Model):
    """What one version of a banner showed, as browsers received it (consent.selectors.
    banner_config: texts per language, purposes, Consent Mode and TCF settings with the vendor
    list version and each vendor's declarations, the look). Taken when a banner is created or
    saved (consent.services.consent_banner_snapshot_take); a restyle within a version (colours,
    position) adds a revision. Records point to the snapshot in force when they were made."""

    banner = models.ForeignKey(ConsentBanner, on_delete=models.CASCADE, related_name="snapshots")
    version = models.PositiveIntegerField()
    revision = models.PositiveSmallIntegerField(default=1)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the content.")
    content = models.JSONField()
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["version", "revision"]
        constraints = [
            models.UniqueConstraint(
                fields=["banner", "version", "revision"], name="one_snapshot_per_revision"
            )
        ]

    def __str__(self) -> str:
        return f"version {self.version}.{self.revision} of {self.banner}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise SnapshotImmutable(f"{self} cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        # Only deleting its site (a cascade, which does not call this) removes a snapshot.
        raise SnapshotImmutable(f"{self} cannot be deleted")


class ConsentRecord(models.Model):
    """One decision of one visitor: the proof of consent. Never holds an IP address."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="consent_records")
    visitor_id = models.CharField(
        max_length=64,
        db_index=True,
        help_text="The browser id, or the day's salted hash when analytics was refused.",
    )
    visitor_id_kind = models.CharField(
        max_length=8, choices=[("browser", "browser id"), ("hashed", "salted hash")]
    )
    granted = models.JSONField(default=list)
    denied = models.JSONField(default=list)
    banner_version = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(1_000_000)]
    )
    snapshot = models.ForeignKey(
        ConsentBannerSnapshot,
        # A snapshot goes only with its site (which takes the records along), never alone.
        on_delete=models.RESTRICT,
        null=True,
        blank=True,
        related_name="records",
        help_text="What the banner showed (empty for records made before snapshots existed).",
    )
    tc_string = models.TextField(blank=True)
    language = models.CharField(max_length=2, blank=True)
    user_agent_family = models.CharField(max_length=64, blank=True)
    country = models.CharField(max_length=2, blank=True)
    recorded_at = models.DateTimeField(default=now, db_index=True)
    mirrored_at = models.DateTimeField(
        null=True, blank=True, help_text="When it reached ClickHouse (consent-rate reports)."
    )

    class Meta:
        ordering = ["-recorded_at"]
        indexes = [models.Index(fields=["site", "visitor_id", "-recorded_at"])]

    def __str__(self) -> str:
        return f"{self.visitor_id} on {self.site} at {self.recorded_at:%Y-%m-%d %H:%M}"
