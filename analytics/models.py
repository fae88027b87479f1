"""Saved segments: a named set of report filters belonging to a site, applied to any report
with ``segment=<id>`` (analytics.api)."""

from __future__ import annotations

from django.db import models


class Segment(models.Model):
    site = models.ForeignKey("sites.Site", on_delete=models.CASCADE, related_name="segments")
    name = models.CharField(max_length=100)
    # Filter name -> value, as the report parameters write them (analytics.reports.query).
    filters = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["site", "name"], name="segment_name_unique_per_site")
        ]

    def __str__(self) -> str:
        return self.name
