"""Ad performance (from the hourly rollup) and consent rates per purpose (from the mirrored
consent decisions)."""

from __future__ import annotations

from typing import Any

from analytics.reports.query import (
    InvalidReportQuery,
    ReportQuery,
    hourly_rollup_conditions,
    rows,
)

AD_GROUPINGS = {
    "campaign": "toString(campaign_id)",
    "ad": "toString(ad_id)",
    "placement": "toString(placement_id)",
    "day": "toString(toDate(hour, {tz:String}))",
}


def ad_performance(query: ReportQuery, *, by: str = "campaign") -> dict[str, Any]:
    """Impressions, viewable rate, clicks and CTR per campaign, ad, placement or day."""
    if by not in AD_GROUPINGS:
        raise InvalidReportQuery(f"by: one of {', '.join(AD_GROUPINGS)}")
    conditions = hourly_rollup_conditions(query)
    sql = f"""
        SELECT {AD_GROUPINGS[by]} AS key, sum(impressions) AS shown,
               sum(viewable_impressions), sum(clicks)
        FROM ad_performance_hourly WHERE {conditions.sql}
        GROUP BY key ORDER BY {"key" if by == "day" else "shown DESC, key"}
    """  # noqa: S608 (groupings and orderings are fixed strings)
    results = []
    for key, impressions, viewable, clicks in rows(
        sql, {**conditions.parameters, "tz": query.period.timezone}
    ):
        results.append(
            {
                by: key,
                "impressions": int(impressions),
                "viewable_impressions": int(viewable),
                "viewable_rate": round(viewable / impressions * 100, 1) if impressions else 0.0,
                "clicks": int(clicks),
                "ctr": round(clicks / impressions * 100, 2) if impressions else 0.0,
            }
        )
    return {"by": by, "results": results}


def consent_rates(query: ReportQuery) -> dict[str, Any]:
    """Of the decisions recorded in the period, the share granting each purpose."""
    sql = """
        SELECT purpose, countIf(has(granted, purpose)) AS granted_count, count() AS decisions
        FROM (
            SELECT record_id, any(granted) AS granted, any(denied) AS denied
            FROM consent_events
            WHERE site_id = {site:String}
              AND recorded_at >= {start:DateTime64(3, 'UTC')}
              AND recorded_at < {end:DateTime64(3, 'UTC')}
            GROUP BY record_id
        )
        ARRAY JOIN arrayDistinct(arrayConcat(granted, denied)) AS purpose
        GROUP BY purpose ORDER BY purpose
    """
    found = rows(
        sql,
        {"site": query.site_id, "start": query.period.start_utc, "end": query.period.end_utc},
    )
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
