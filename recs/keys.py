"""The Redis keys of recommendations, per site (its public id) and visitor (the browser id),
and how long and how large each may grow (docs/recommendations.md). Shared by the writes
(recs.services) and the reads (recs.selectors)."""

from __future__ import annotations

DAY_SECONDS = 86_400
PREFIX = "naboria:recs:"

# A visitor's visited paths (sorted set: path -> last visit, ms): what recommendations leave out.
VISITS_TTL_SECONDS = 7 * DAY_SECONDS
MAX_VISITS = 200
# A visitor's ad impressions and clicks (sorted sets: "campaign:ad:impression" -> time, ms).
AD_SIGNALS_TTL_SECONDS = 30 * DAY_SECONDS
MAX_AD_SIGNALS = 500
# A site's page titles (hash: path -> title), as visits with a verified token reported them.
TITLES_TTL_SECONDS = 30 * DAY_SECONDS
MAX_TITLES = 2000
# A site's popular pages (JSON list), rebuilt by the periodic job; kept a day if the job stops.
POPULAR_TTL_SECONDS = DAY_SECONDS


def visits(site_id: str, bid: str) -> str:
    return f"{PREFIX}visits:{site_id}:{bid}"


def ad_signals(site_id: str, bid: str, kind: str) -> str:
    """``kind``: impression or click."""
    return f"{PREFIX}{kind}s:{site_id}:{bid}"


def titles(site_id: str) -> str:
    return f"{PREFIX}titles:{site_id}"


def popular(site_id: str) -> str:
    return f"{PREFIX}popular:{site_id}"
