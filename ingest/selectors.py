"""What the collect endpoints need to know about a site, cached in process.

Endpoints must not query the database per request; a site's settings and secrets are kept for
``SITE_CACHE_SECONDS`` so a change in the admin (a new allowed domain, a rotated secret) takes
effect within that time in every web process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from consent.models import ConsentPurpose
from sites.models import Site
from sites.selectors import site_secrets_valid

SITE_CACHE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class SiteConfig:
    public_id: str
    allowed_domains: tuple[str, ...]
    secrets: tuple[str, ...]
    retention_days: int
    analytics_enabled: bool
    ads_enabled: bool
    respect_do_not_track: bool
    # Naboria's own banner: consent claims are checked against the recorded decisions.
    consent_banner_enabled: bool = False
    consent_purposes: frozenset[str] = frozenset()

    def allows_origin_host(self, host: str) -> bool:
        host = host.lower()
        for domain in self.allowed_domains:
            if domain.startswith("*."):
                if host == domain[2:] or host.endswith(domain[1:]):
                    return True
            elif host == domain:
                return True
        return False


_cache: dict[str, tuple[float, SiteConfig | None]] = {}


def cached_site_config(public_id: str) -> tuple[bool, SiteConfig | None]:
    """(found in cache, config) without touching the database."""
    entry = _cache.get(public_id)
    if entry is None or entry[0] < time.monotonic():
        return False, None
    return True, entry[1]


def load_site_config(public_id: str) -> SiteConfig | None:
    """Read a site from the database and cache the answer, including "no such site"."""
    site = Site.objects.filter(public_id=public_id).first()
    config = None
    if site is not None:
        config = SiteConfig(
            public_id=site.public_id,
            allowed_domains=tuple(site.allowed_domains),
            secrets=tuple(site_secrets_valid(site=site)),
            retention_days=site.retention_days,
            analytics_enabled=site.analytics_enabled,
            ads_enabled=site.ads_enabled,
            respect_do_not_track=site.respect_do_not_track,
            consent_banner_enabled=site.consent_banner_enabled,
            consent_purposes=frozenset(
                ConsentPurpose.objects.filter(banner__site=site).values_list("key", flat=True)
            ),
        )
    if len(_cache) > 10_000:  # unknown ids sent by scanners must not grow it without bound
        _cache.clear()
    _cache[public_id] = (time.monotonic() + SITE_CACHE_SECONDS, config)
    return config


def forget_site_configs() -> None:
    _cache.clear()
