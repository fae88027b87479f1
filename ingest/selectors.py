"""Reads of the request side of tracking: what the endpoints need to know about a site (cached
in process), whether a request's origin may use it, and the consent the server accepts.

Endpoints must not query the database per request; a site's settings and secrets are kept for
``SITE_CACHE_SECONDS`` so a change in the admin (a new allowed domain, a rotated secret) takes
effect within that time in every web process.

Used by the tracking endpoints (ingest.endpoints) and the ad server (ads.serving,
ads.endpoints). Entry points: site_config_get, site_origin_check, site_config_for_request,
consent_verified; forget_site_configs (tests).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from consent.models import ConsentBanner, RegionRule
from consent.regions import region_rule
from consent.selectors import cached_recorded_purposes, recorded_purposes
from events.schemas import Consent
from ingest.http import Refusal, in_database
from sites.models import Site, host_allowed
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
    # The banner's rule outside the EEA, UK and Switzerland (consent.regions, GET /region).
    consent_elsewhere: str = "opt_in"
    # The recommendations endpoints answer (recs.endpoints, docs/recommendations.md).
    recommendations_enabled: bool = False

    def allows_origin_host(self, host: str, port: int | None = None) -> bool:
        return host_allowed(host=host, port=port, domains=self.allowed_domains)


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
            consent_elsewhere=ConsentBanner.objects.filter(site=site)
            .values_list("outside_regulated_regions", flat=True)
            .first()
            or "opt_in",
            recommendations_enabled=site.recommendations_enabled,
        )
    if len(_cache) > 10_000:  # unknown ids sent by scanners must not grow it without bound
        _cache.clear()
    _cache[public_id] = (time.monotonic() + SITE_CACHE_SECONDS, config)
    return config


def forget_site_configs() -> None:
    _cache.clear()


async def site_config_get(*, public_id: str) -> SiteConfig:
    """The site's settings (cached in process); 404 when there is no such site."""
    found, config = cached_site_config(public_id)
    if not found:
        config = await in_database(load_site_config)(public_id)
    if config is None:
        raise Refusal(404, f"unknown site {public_id!r}")
    return config


def site_origin_check(*, site: SiteConfig, headers: dict[str, str]) -> None:
    """403 unless the request's Origin (if any) is one of the site's allowed domains."""
    # Apps and servers send no Origin; browsers always do on cross-site requests.
    origin = headers.get("origin")
    if not origin or origin == "null":
        return
    try:
        parts = urlsplit(origin)
        host, port = parts.hostname or "", parts.port
    except ValueError:  # e.g. an unclosed IPv6 bracket: urlsplit cannot take it apart
        raise Refusal(400, "malformed Origin header") from None
    if not site.allows_origin_host(host, port):
        raise Refusal(403, f"origin {host!r} is not an allowed domain of this site")


async def site_config_for_request(*, public_id: str, headers: dict[str, str]) -> SiteConfig:
    """The site, if it exists and the request's origin is one of its allowed domains."""
    config = await site_config_get(public_id=public_id)
    site_origin_check(site=config, headers=headers)
    return config


NO_CONSENT = Consent()


async def consent_verified(
    *,
    site: SiteConfig,
    bid: str | None,
    claimed: Consent,
    country: str = "",
    privacy_signal: bool = False,
) -> Consent:
    """The consent the server accepts: on sites that use Naboria's banner a claim counts only
    as far as the browser id's latest recorded decision granted it, whatever the page sends.
    Without a decision that still counts, it counts only where the banner's rule for the
    request's ``country`` (the server's, from the IP) is opt-out or no banner; unknown
    countries are opt-in. A site that honours GPC / Do-Not-Track never gets ads consent from a
    request that sends one, whatever was recorded: ad personalisation is denied.
    (A site with a CMP of its own is trusted with what its page claims.)"""
    if privacy_signal and site.respect_do_not_track:
        claimed = Consent(analytics=claimed.analytics, ads=False)
    if not site.consent_banner_enabled or claimed == NO_CONSENT:
        return claimed
    if bid is None:
        return NO_CONSENT
    found, granted = cached_recorded_purposes(site_public_id=site.public_id, visitor_id=bid)
    if not found:
        granted = await in_database(recorded_purposes)(
            site_public_id=site.public_id, visitor_id=bid
        )
    if granted is None:
        if region_rule(elsewhere=site.consent_elsewhere, country=country) == RegionRule.OPT_IN:
            return NO_CONSENT
        return claimed
    return Consent(
        analytics=claimed.analytics and "analytics" in granted,
        ads=claimed.ads and "ads" in granted,
    )
