"""Enrichment of incoming events, done at ingest (not in the drain) because the raw IP must not
leave the request: the cookieless visitor hash and the geo lookup need it, and after them it is
dropped. The rest (user agent, referrer, UTM) is computed here too so Kafka carries finished
rows and the drain is a plain, fast loader. Everything that depends only on the user agent is
computed once per distinct user agent (an LRU cache), so a batch of 20 events costs one lookup;
whether it is a bot, and why, comes from ingest.bots.

Entry points: client_ip, describe_user_agent, classify_referrer, utm_parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from urllib.parse import parse_qs, urlsplit

from ua_parser import parse as parse_user_agent

from ingest.bots import classify_user_agent
from ingest.referrers import DIRECT_SOURCE, canonical_source, lookup_referrer


@dataclass(frozen=True, slots=True)
class UserAgentInfo:
    browser: str
    browser_version: str
    os: str
    os_version: str
    device_type: str
    is_bot: bool
    # Why it is a bot ("list:<pattern>", "heuristic:<name>"), "" for a person: see ingest.bots.
    bot_reason: str = ""


def client_ip(*, remote_addr: str, forwarded_for: str, trusted_proxies: int) -> str:
    """The visitor's address: the hop our trusted proxies saw, or the socket peer."""
    if trusted_proxies and forwarded_for:
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        if len(hops) >= trusted_proxies:
            return hops[-trusted_proxies]
    return remote_addr


def _device_type(user_agent: str, os_family: str, device_family: str) -> str:
    lowered = user_agent.lower()
    if device_family == "iPad" or "tablet" in lowered:
        return "tablet"
    if os_family == "Android":
        return "mobile" if "mobile" in lowered else "tablet"
    if os_family in {"iOS", "Windows Phone", "KaiOS"} or "mobi" in lowered:
        return "mobile"
    if not user_agent:
        return "unknown"
    return "desktop"


@lru_cache(maxsize=16384)
def describe_user_agent(user_agent: str) -> UserAgentInfo:
    parsed = parse_user_agent(user_agent)
    agent, system, device = parsed.user_agent, parsed.os, parsed.device
    os_family = system.family if system else "Other"
    device_family = device.family if device else ""
    bot = classify_user_agent(user_agent)
    return UserAgentInfo(
        browser=agent.family if agent else "Other",
        browser_version=(agent.major or "") if agent else "",
        os=os_family,
        os_version=(system.major or "") if system else "",
        device_type=_device_type(user_agent, os_family, device_family),
        is_bot=bot.is_bot,
        bot_reason=bot.reason,
    )


_NO_UTM: Mapping[str, str] = MappingProxyType({})


@lru_cache(maxsize=8192)
def utm_parameters(query_string: str) -> Mapping[str, str]:
    """The UTM tags of a page URL's query string (landing URLs repeat: cached, read-only)."""
    if "utm_" not in query_string:
        return _NO_UTM
    query = parse_qs(query_string)
    return MappingProxyType(
        {
            key: query[key][0][:200]
            for key in ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
            if query.get(key)
        }
    )


# utm_medium values as people write them -> the product's mediums; anything else is referral.
UTM_MEDIUMS = {
    **dict.fromkeys(
        [
            "cpc",
            "ppc",
            "paid",
            "paidsearch",
            "paid_social",
            "paidsocial",
            "display",
            "cpm",
            "banner",
            "retargeting",
        ],
        "paid",
    ),
    **dict.fromkeys(["email", "e-mail", "e_mail", "newsletter", "mail"], "email"),
    **dict.fromkeys(["social", "social-network", "social_network", "social-media", "sm"], "social"),
    **dict.fromkeys(["organic", "search", "seo"], "search"),
}


@lru_cache(maxsize=8192)
def _referrer_host(referrer: str) -> str:
    """A referrer's host without "www." (referrers repeat: search engines, a site's own pages)."""
    return (urlsplit(referrer).hostname or "").removeprefix("www.")


def classify_referrer(*, referrer: str, page_host: str, utm: Mapping[str, str]) -> tuple[str, str]:
    """(source, medium) of a visit: UTM tags win, then the referrer's known source, else
    the referring host; no referrer (or one from the same site) is DIRECT_SOURCE. A source
    has one spelling (ingest.referrers.canonical_source): utm_source=google is Google."""
    if utm.get("utm_source"):
        medium = UTM_MEDIUMS.get(utm.get("utm_medium", "").lower(), "referral")
        return canonical_source(utm["utm_source"]), medium
    if not referrer:
        return DIRECT_SOURCE, "direct"
    host = _referrer_host(referrer)
    if not host or host == page_host.removeprefix("www."):
        return DIRECT_SOURCE, "direct"
    known = lookup_referrer(host)
    if known is not None:
        return known
    return host, "referral"
