"""The tag manager: other parties' scripts, iframes and pixels a site owner adds in the admin,
each bound to purposes of the site's consent banner. The tracker loader serves a site's tags
(tags.selectors) and the tracker's tags module injects each one only once all its purposes are
granted, and removes it on withdrawal (docs/tags.md).

Purposes are kept by key, as the banner and the browser name them: a purpose later removed
from the banner can never be granted again, so its tags stop running rather than run with
fewer conditions.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from consent.models import ConsentPurpose
from sites.models import Site
from tags import validation


class TagTemplate(models.TextChoices):
    GA4 = "ga4", "Google Analytics 4"
    GOOGLE_ADS = "google_ads", "Google Ads"
    META_PIXEL = "meta_pixel", "Meta Pixel"
    LINKEDIN = "linkedin", "LinkedIn Insight"
    SCRIPT = "script", "Custom script"
    IFRAME = "iframe", "Iframe"
    PIXEL = "pixel", "No-script pixel (image)"


# The fields each template uses (the others must stay empty), and which of them it needs.
VENDOR_TEMPLATES = frozenset(
    {TagTemplate.GA4, TagTemplate.GOOGLE_ADS, TagTemplate.META_PIXEL, TagTemplate.LINKEDIN}
)
TEMPLATE_FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    **{
        template: (frozenset({"tracking_id"}), frozenset({"tracking_id"}))
        for template in VENDOR_TEMPLATES
    },
    TagTemplate.SCRIPT: (frozenset({"url", "code"}), frozenset()),
    TagTemplate.IFRAME: (
        frozenset({"url", "title", "container", "width", "height"}),
        frozenset({"url", "title"}),
    ),
    TagTemplate.PIXEL: (frozenset({"url"}), frozenset({"url"})),
}
OPTIONAL_FIELDS = ("tracking_id", "url", "code", "title", "container", "width", "height")
# First-party cookies the vendors' scripts set on the site's domain: deleted on withdrawal
# (the vendors' own cookies on their domains are out of a page's reach).
TEMPLATE_COOKIES: dict[str, list[str]] = {
    TagTemplate.GA4: ["_ga", "_ga_*", "_gid", "_gat*"],
    TagTemplate.GOOGLE_ADS: ["_gcl_*"],
    TagTemplate.META_PIXEL: ["_fbp", "_fbc"],
    TagTemplate.LINKEDIN: ["li_fat_id", "li_giant"],
}


class Tag(models.Model):
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=100)
    template = models.CharField(max_length=16, choices=TagTemplate.choices)
    purposes = models.JSONField(
        default=list,
        help_text="Keys of the banner's purposes: the tag runs once all of them are granted.",
    )
    enabled = models.BooleanField(default=True)
    tracking_id = models.CharField(
        max_length=32,
        blank=True,
        help_text="GA4 measurement id, Google Ads tag id, Meta Pixel id or LinkedIn partner id.",
    )
    url = models.CharField(
        max_length=validation.URL_MAX_LENGTH,
        blank=True,
        help_text="Script src, iframe src or pixel image: https:// or a path on the site.",
    )
    code = models.TextField(
        blank=True,
        help_text="Custom script: JavaScript without <script> tags (run after the URL's script "
        "has loaded when both are given).",
    )
    title = models.CharField(
        max_length=200, blank=True, help_text="Iframe: what it shows, for screen readers."
    )
    container = models.CharField(
        max_length=100,
        blank=True,
        help_text="Iframe: id of the page element it goes into, on the pages that have it "
        "(empty: at the end of every page).",
    )
    width = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(4000)]
    )
    height = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(4000)]
    )
    cookies = models.JSONField(
        default=list,
        blank=True,
        help_text="First-party cookies this tag sets, deleted on withdrawal (a trailing * for "
        "a prefix); vendor templates know theirs.",
    )
    reload_on_withdrawal = models.BooleanField(
        default=False,
        help_text="A script that ran cannot be un-run: reload the page when the visitor "
        "withdraws, so that it is gone from memory too.",
    )
    order = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["site", "order", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_template_display()})"

    def clean(self) -> None:
        errors: dict[str, str] = {}
        used, needed = TEMPLATE_FIELDS.get(self.template, (frozenset(), frozenset()))
        for field in OPTIONAL_FIELDS:
            value = getattr(self, field)
            present = value is not None and value != ""
            if field in needed and not present:
                errors[field] = f"needed by the {self.get_template_display()} template"
            elif field not in used and present:
                errors[field] = f"not used by the {self.get_template_display()} template"
        if self.template == TagTemplate.SCRIPT and not (self.url or self.code):
            errors["code"] = "a custom script needs code, a URL, or both"
        checks: list[tuple[str, str | None]] = []
        if self.template in VENDOR_TEMPLATES and self.tracking_id:
            checks.append(
                (
                    "tracking_id",
                    validation.tracking_id_error(template=self.template, value=self.tracking_id),
                )
            )
        if self.url:
            checks.append(("url", validation.url_error(self.url)))
        if self.code:
            checks.append(("code", validation.code_error(self.code)))
        if self.container:
            checks.append(("container", validation.element_id_error(self.container)))
        checks.append(("cookies", validation.cookie_names_error(self.cookies)))
        errors.update({field: error for field, error in checks if error and field not in errors})
        purposes_error = self._purposes_error()
        if purposes_error:
            errors["purposes"] = purposes_error
        if errors:
            raise ValidationError(errors)

    def _purposes_error(self) -> str | None:
        keys = self.purposes
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
            return "choose at least one purpose of the site's banner"
        if self.site_id is None:
            return None  # the site field has its own error
        banner_purposes: dict[str, Any] = {
            purpose.key: purpose
            for purpose in ConsentPurpose.objects.filter(banner__site_id=self.site_id)
        }
        if not banner_purposes:
            return "the site has no consent banner: a tag needs purposes of its banner"
        unknown = sorted(set(keys) - set(banner_purposes))
        if unknown:
            return f"not purposes of this site's banner: {', '.join(unknown)}"
        if self.template in VENDOR_TEMPLATES and all(banner_purposes[k].required for k in keys):
            return (
                f"{self.get_template_display()} is not strictly necessary: bind it to a "
                "purpose visitors choose"
            )
        return None
