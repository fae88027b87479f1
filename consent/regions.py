"""Rules by visitor location: the banner always asks first (opt-in) in the regions whose law
requires it, the EEA, the United Kingdom and Switzerland; elsewhere each banner says what it
does (consent.models.RegionRule). The visitor's country is the server's (ingest.geo, from the
request's IP address), never the page's.
"""

from __future__ import annotations

from consent.models import RegionRule

# The 27 EU member states, the three other EEA states (Iceland, Liechtenstein, Norway), the
# United Kingdom (UK GDPR, PECR) and Switzerland (nFADP). ISO 3166-1 alpha-2, as Consent Mode's
# `region` parameter takes them (Greece is GR there, not the EU's EL).
OPT_IN_REQUIRED = [
    # EU
    "AT",
    "BE",
    "BG",
    "HR",
    "CY",
    "CZ",
    "DK",
    "EE",
    "FI",
    "FR",
    "DE",
    "GR",
    "HU",
    "IE",
    "IT",
    "LV",
    "LT",
    "LU",
    "MT",
    "NL",
    "PL",
    "PT",
    "RO",
    "SK",
    "SI",
    "ES",
    "SE",
    # EEA, UK, Switzerland
    "IS",
    "LI",
    "NO",
    "GB",
    "CH",
]
_OPT_IN_REQUIRED = frozenset(OPT_IN_REQUIRED)


def region_rule(*, elsewhere: str, country: str) -> str:
    """The rule for a visitor from ``country`` on a banner whose rule outside the regulated
    regions is ``elsewhere`` ("" country, unknown: treated as regulated, the safe side)."""
    if not country or country.upper() in _OPT_IN_REQUIRED:
        return RegionRule.OPT_IN.value
    return elsewhere
