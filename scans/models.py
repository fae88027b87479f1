"""What the cookie and tracker scan is told and what it found.

ScanConfig: per site, which pages besides the home pages to visit and whether the periodic job
scans it. Scan: one run over a site's pages; ScanPage: one page of it, visited twice (before
and after consent); ScanFinding: a cookie, a storage key or a third-party request seen on that
page, with the phase that first showed it. Findings of the "before consent" phase are the ones
a site owner has to justify (``flagged``).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.timezone import now

from scans.targets import url_refusal
from sites.models import Site


def validate_url_list(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError('Enter a list of URLs, e.g. ["https://example.com/pricing"].')


class ScanConfig(models.Model):
    site = models.OneToOneField(Site, on_delete=models.CASCADE, related_name="scan_config")
    scheduled = models.BooleanField(
        default=True,
        help_text="Scanned by the periodic job every SCAN_INTERVAL_HOURS.",
    )
    urls = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_url_list],
        help_text='Pages to scan besides the home pages, e.g. ["https://example.com/shop"]; '
        "only URLs on the site's allowed domains.",
    )
    include_top_pages = models.BooleanField(
        default=True, help_text="Also scan the most-viewed pages of the last 30 days."
    )

    class Meta:
        verbose_name = "scan configuration"

    def __str__(self) -> str:
        return f"scan configuration of {self.site}"

    def clean(self) -> None:
        if not self.site_id:
            return  # the form reports the missing site
        refusals = [
            refusal
            for url in self.urls or []
            if (refusal := url_refusal(url=url, allowed_domains=self.site.allowed_domains))
        ]
        if refusals:
            raise ValidationError({"urls": refusals})


class ScanStatus(models.TextChoices):
    RUNNING = "running", "running"
    DONE = "done", "done"
    FAILED = "failed", "failed"


class ScanTrigger(models.TextChoices):
    COMMAND = "command", "manage.py scan_site"
    SCHEDULE = "schedule", "periodic job"


class Scan(models.Model):
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="scans")
    trigger = models.CharField(max_length=16, choices=ScanTrigger.choices)
    status = models.CharField(max_length=16, choices=ScanStatus.choices, default=ScanStatus.RUNNING)
    started_at = models.DateTimeField(default=now, editable=False)
    finished_at = models.DateTimeField(null=True, blank=True)
    browser_version = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    pages_scanned = models.PositiveIntegerField(default=0)
    flagged = models.PositiveIntegerField(
        default=0, help_text="Cookies, storage keys and third-party requests before consent."
    )

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["site", "-started_at"], name="scan_site_started")]

    def __str__(self) -> str:
        return f"scan of {self.site.name} at {self.started_at:%Y-%m-%d %H:%M}"


class ScanPage(models.Model):
    scan = models.ForeignKey(Scan, on_delete=models.CASCADE, related_name="pages")
    url = models.URLField(max_length=2000)
    final_url = models.URLField(max_length=2000, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    banner_found = models.BooleanField(
        default=False, help_text="Naboria's banner showed and its 'accept all' was clicked."
    )
    error = models.TextField(blank=True)
    blocked_hosts = models.JSONField(
        default=list,
        blank=True,
        help_text="Hosts the page asked for at non-public addresses, which the scan refused.",
    )

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.url


class FindingKind(models.TextChoices):
    COOKIE = "cookie", "cookie"
    LOCAL_STORAGE = "local_storage", "localStorage key"
    SESSION_STORAGE = "session_storage", "sessionStorage key"
    REQUEST = "request", "third-party request"


class Phase(models.TextChoices):
    BEFORE_CONSENT = "before", "before consent"
    AFTER_CONSENT = "after", "after consent"


class Party(models.TextChoices):
    FIRST = "first", "first party"
    THIRD = "third", "third party"


class ScanFinding(models.Model):
    page = models.ForeignKey(ScanPage, on_delete=models.CASCADE, related_name="findings")
    kind = models.CharField(max_length=16, choices=FindingKind.choices)
    phase = models.CharField(max_length=8, choices=Phase.choices)
    # Cookie or storage key name; the host of a request.
    name = models.CharField(max_length=500)
    # Cookie domain, storage origin, or the request's host again.
    domain = models.CharField(max_length=500, blank=True)
    party = models.CharField(max_length=8, choices=Party.choices)
    # Cookies: when they expire (null: when the browser closes).
    expires_at = models.DateTimeField(null=True, blank=True)
    # Requests: Playwright's resource types (script, image, xhr, fetch, document, …), joined.
    resource_types = models.CharField(max_length=200, blank=True)
    requests = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["kind", "phase", "name", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.name}"

    @property
    def flagged(self) -> bool:
        return self.phase == Phase.BEFORE_CONSENT
