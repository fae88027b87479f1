"""Reads of the tag manager: a site's tags as the tracker loader serves them (ingest.
tracker_script puts them in the site's config; docs/tags.md lists the fields)."""

from __future__ import annotations

from typing import Any

from sites.models import Site
from tags.models import TEMPLATE_COOKIES, Tag

# Config field of each template field (the ones a template does not use are left out).
_FIELDS = {
    "tracking_id": "trackingId",
    "url": "url",
    "code": "code",
    "title": "title",
    "container": "container",
    "width": "width",
    "height": "height",
}


def tags_config(*, site: Site) -> list[dict[str, Any]]:
    """The site's enabled tags in order, each with what its template needs, the purposes it
    waits for and the first-party cookies its withdrawal deletes. Call it only for a site whose
    banner is on: the purposes are that banner's."""
    config = []
    for tag in Tag.objects.filter(site=site, enabled=True).order_by("order", "id"):
        if not tag.purposes:
            continue  # never saved through clean(); a tag without purposes would run freely
        entry: dict[str, Any] = {
            "id": tag.pk,
            "type": tag.template,
            "purposes": list(tag.purposes),
            "cookies": [*TEMPLATE_COOKIES.get(tag.template, []), *tag.cookies],
            "reload": tag.reload_on_withdrawal,
        }
        for field, name in _FIELDS.items():
            value = getattr(tag, field)
            if value not in (None, ""):
                entry[name] = value
        config.append(entry)
    return config
