"""The stored IAB Global Vendor List versions: a model of the consent app, in a module of its
own so that consent.vendor_list (which reads it) and consent.models (which validates vendor ids
with consent.vendor_list) do not import each other."""

from __future__ import annotations

from django.db import models
from django.utils.timezone import now


class GlobalVendorList(models.Model):
    """One version of the IAB Global Vendor List (GVL v3 JSON) as refresh_vendor_list stored
    it; the newest is the one banners use (consent.vendor_list)."""

    version = models.PositiveIntegerField(unique=True)
    tcf_policy_version = models.PositiveSmallIntegerField()
    last_updated = models.DateTimeField(help_text="lastUpdated of the list, set by the IAB.")
    fetched_at = models.DateTimeField(default=now)
    source = models.CharField(max_length=500)
    data = models.JSONField()

    class Meta:
        ordering = ["-version"]

    def __str__(self) -> str:
        return f"vendor list v{self.version} of {self.last_updated:%Y-%m-%d}"
