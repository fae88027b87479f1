"""Reads of the request side of tracking: what the endpoints need to know about a site (cached
in process), whether a request's origin may use it, and the consent the server accepts.

Endpoints must not query the database per request; a site's settings and secrets are kept for
``SITE_CACHE_SECONDS`` so a change in the admin (a new allowed domain, a rotated secret) takes
effect within that time in every web process. A site in use is read again in the background
once its entry is ``SITE_REFRESH_SECONDS`` old, so under steady traffic no request waits for the
database; and a site's reads are made one at a time: the requests that need it meanwhile wait
for that one read (hundreds of requests in flight at once would otherwise each query the
database when an entry expires).

Used by the tracking endpoints (ingest.endpoints) and the ad server (ads.serving,
ads.endpoints). Entry points: site_config_get, site_origin_check, site_config_for_request,
consent_verified; forget_site_configs (tests).
"""

from __future__ import annotations

import asyncio
import logging
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

logger = logging.getLogger(__name__)

SITE_CACHE_SECONDS = 10.0
SITE_REFRESH_SECONDS = SITE_CACHE_SECONDS / 2


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


class _Cached:
    """A site's config (None: no such site) and when it is read again and when dropped."""

    __slots__ = ("config", "expires", "refresh")

    def __init__(self, config: SiteConfig | None) -> None:
        now = time.monotonic()
        self.config = config
        self.refresh = now + SITE_REFRESH_SECONDS
        self.expires = now + SITE_CACHE_SECONDS


_cache: dict[str, _Cached] = {}
# The read under way per event loop and site: the requests of that loop that need the site
# meanwhile await it rather than query the database each.
_reads: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Task[SiteConfig | None]] = {}


def load_site_config(public_id: str) -> SiteConfig | None:
    """Read a site from the database (None: no such site)."""
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
    return config


def forget_site_configs() -> None:
    _cache.clear()


async def _read_and_cache(public_id: str) -> SiteConfig | None:
    """The site read from the database and cached, "no such site" included."""
    config = await in_database(load_site_config)(public_id)
    if len(_cache) > 10_000:  # unknown ids sent by scanners must not grow it without bound
        _cache.clear()
    _cache[public_id] = _Cached(config)
    return config


def _read(public_id: str) -> asyncio.Task[SiteConfig | None]:
    """This loop's read of the site under way, started if there is none."""
    loop = asyncio.get_running_loop()
    key = (loop, public_id)
    read = _reads.get(key)
    if read is None:
        read = _reads[key] = loop.create_task(_read_and_cache(public_id))
        read.add_done_callback(lambda _: _reads.pop(key, None))
    return read


def _refreshed(read: asyncio.Task[SiteConfig | None]) -> None:
    # A background read that failed leaves the entry as it was until it expires; then a
    # request reads the site itself and answers 503 if the database is still away.
    if not read.cancelled() and read.exception() is not None:
        logger.warning("site settings not read again: %s", read.exception())


async def site_config_get(*, public_id: str) -> SiteConfig:
    """The site's settings (cached in process); 404 when there is no such site."""
    entry = _cache.get(public_id)
    now = time.monotonic()
    if entry is not None and now < entry.expires:
        config = entry.config
        if now >= entry.refresh:
            entry.refresh = entry.expires  # one background read per entry
            _read(public_id).add_done_callback(_refreshed)
    else:
        # Shielded: a request that goes away must not cancel the read the others await.
        config = await asyncio.shield(_read(public_id))
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
