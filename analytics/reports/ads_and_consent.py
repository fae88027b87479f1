"""Ad performance (from the deduplicated raw ad events) and consent rates per purpose (from the
mirrored consent decisions). Each applies the filters its rows can answer (AD_FILTERS,
CONSENT_FILTERS), on each ad event or decision, and refuses the others with a 400."""

from __future__ import annotations

from typing import Any

from analytics.reports.query import (
    Conditions,
    InvalidReportQuery,
    ReportQuery,
    column_conditions,
    rows,
)

AD_GROUPINGS = {
    "campaign": "toString(campaign_id)",
    "ad": "toString(ad_id)",
    "placement": "toString(placement_id)",
    "day": "toString(toDate(timestamp, {tz:String}))",
}

# Filter name -> column of ad_events: the page the ad was shown on, and the viewer's country,
# region, city and device.
AD_FILTERS = {
    "path": "pathname",
    "country": "country",
    "region": "region",
    "city": "city",
    "device": "device_type",
}
# Filter name -> column of consent_events.
CONSENT_FILTERS = {"country": "country", "browser": "user_agent_family"}

# The video events the report counts, as (result field, stored event type), in playback order.
VIDEO_COUNTS = (
    ("video_starts", "start"),
    ("video_first_quartiles", "firstQuartile"),
    ("video_midpoints", "midpoint"),
    ("video_third_quartiles", "thirdQuartile"),
    ("video_completes", "complete"),
)


def ad_performance(query: ReportQuery, *, by: str = "campaign") -> dict[str, Any]:
    """Impressions, viewable rate, clicks and CTR per campaign, ad, placement or day; and of
    video ads the starts, quartiles and completes their players reported, and the completion
    rate (completes per start)."""
    if by not in AD_GROUPINGS:
        raise InvalidReportQuery(f"by: one of {', '.join(AD_GROUPINGS)}")
    conditions = Conditions()
    conditions.add("site_id = {site:String}", site=query.site_id)
    conditions.add(
        "timestamp >= {start:DateTime64(3, 'UTC')} AND timestamp < {end:DateTime64(3, 'UTC')}",
        start=query.period.start_utc,
        end=query.period.end_utc,
    )
    if not query.include_bots:
        conditions.add("is_bot = 0")
    column_conditions(query, conditions, report="ads", columns=AD_FILTERS)
    video = "".join(f", countIf(event_type = '{kind}')" for _, kind in VIDEO_COUNTS)
    sql = f"""
        SELECT {AD_GROUPINGS[by]} AS key, countIf(event_type = 'impression') AS shown,
               countIf(event_type = 'viewable'), countIf(event_type = 'click'){video}
        FROM ad_events WHERE {conditions.sql}
        GROUP BY key ORDER BY {"key" if by == "day" else "shown DESC, key"}
    """  # noqa: S608 (groupings, orderings and event types are fixed strings)
    results = []
    for key, impressions, viewable, clicks, *played in rows(
        sql, {**conditions.parameters, "tz": query.period.timezone}
    ):
        videos = {field: int(count) for (field, _), count in zip(VIDEO_COUNTS, played, strict=True)}
        starts, completes = videos["video_starts"], videos["video_completes"]
        results.append(
            {
                by: key,
                "impressions": int(impressions),
                "viewable_impressions": int(viewable),
                "viewable_rate": round(viewable / impressions * 100, 1) if impressions else 0.0,
                "clicks": int(clicks),
                "ctr": round(clicks / impressions * 100, 2) if impressions else 0.0,
                **videos,
                "video_completion_rate": round(completes / starts * 100, 1) if starts else 0.0,
            }
        )
    return {"by": by, "results": results}


def consent_rates(query: ReportQuery) -> dict[str, Any]:
    """Of the decisions recorded in the period, the share granting each purpose."""
    conditions = Conditions()
    conditions.add("site_id = {site:String}", site=query.site_id)
    conditions.add(
        "recorded_at >= {start:DateTime64(3, 'UTC')} AND recorded_at < {end:DateTime64(3, 'UTC')}",
        start=query.period.start_utc,
        end=query.period.end_utc,
    )
    column_conditions(query, conditions, report="consent", columns=CONSENT_FILTERS)
    sql = f"""
        SELECT purpose, countIf(has(granted, purpose)) AS granted_count, count() AS decisions
        FROM (
            SELECT record_id, any(granted) AS granted, any(denied) AS denied
            FROM consent_events WHERE {conditions.sql}
            GROUP BY record_id
        )
        ARRAY JOIN arrayDistinct(arrayConcat(granted, denied)) AS purpose
        GROUP BY purpose ORDER BY purpose
    """  # noqa: S608 (columns come from CONSENT_FILTERS; values are parameters)
    found = rows(sql, conditions.parameters)
    return {
        "results": [
            {
                "purpose": purpose,
                "decisions": int(decisions),
                "granted": int(granted),
                "rate": round(granted / decisions * 100, 1) if decisions else 0.0,
            }
            for purpose, granted, decisions in found
        ]
    }
