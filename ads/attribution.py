"""Conversions attributed to ad campaigns: which goal events count for which campaign.

The rule (docs/ads.md, "Selling"):

- A campaign's **goal** is its custom event (``goal_event``), on its goal page when it has one
  (``goal_path``); without an event, a view of its goal page. A **conversion** is a goal event
  of a person (bots are neither touches nor conversions).
- A **touch** is a click or an impression of one of the campaign's ads, on the same site, by the
  same visitor, at or before the conversion: a click within the campaign's post-click window,
  an impression within its post-view window (a window of 0 days takes no touches of its kind).
- Each conversion is attributed once, to the **last touch** among the campaigns whose goal it
  is: the latest click if any click qualifies (a view-through counts only without a click),
  else the latest impression.
- A click through the click redirect is stored with the cookieless visitor id, while a
  consenting visitor's page events (and the impression the page reported) carry the browser
  id: a click is therefore also a touch of the visitor its impression was stored for.

Cookieless visitor ids change every day, so without consent a touch and a conversion on
different days are different visitors.

One SQL rule for its two readers: the CPA spend job (ads.services.conversions_spend_count) and
the revenue report (analytics.reports.ad_revenue). Values travel as query parameters, named
``attribution_*`` so that a report can embed the SQL next to parameters of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ads.models import Campaign
from naboria import clickhouse

DAY_MILLISECONDS = 86_400_000


@dataclass(frozen=True)
class CampaignGoal:
    campaign_id: int
    event_name: str  # a custom event; "" = a view of ``path``
    path: str  # "" = on any page
    post_click_days: int
    post_view_days: int

    @classmethod
    def of(cls, campaign: Campaign) -> CampaignGoal:
        return cls(
            campaign_id=campaign.pk,
            event_name=campaign.goal_event,
            path=campaign.goal_path,
            post_click_days=campaign.post_click_days,
            post_view_days=campaign.post_view_days,
        )


@dataclass(frozen=True)
class AttributedConversion:
    site_id: str  # public id
    event_id: str  # the goal event's
    timestamp: datetime
    campaign_id: int
    ad_id: int
    post_click: bool  # False: a view-through


def attributed_conversions_sql(
    *,
    site_ids: Sequence[str],
    goals: Sequence[CampaignGoal],
    start: datetime,
    end: datetime,
    inserted_from: datetime | None = None,
) -> tuple[str, dict[str, Any]]:
    """SQL of one row per conversion in ``[start, end)`` on the sites attributed to one of the
    ``goals``' campaigns, and its parameters. Columns: ``conversion_site``, ``conversion_id``
    (the goal event's id), ``converted_at``, ``campaign``, ``ad``, ``post_click`` (1 after a
    click, 0 after an impression). With ``inserted_from``, only the conversions stored since
    then (their touches may be older)."""
    longest_days = max(
        (max(goal.post_click_days, goal.post_view_days) for goal in goals), default=0
    )
    parameters: dict[str, Any] = {
        "attribution_sites": list(site_ids),
        "attribution_start": start,
        "attribution_end": end,
        "attribution_touch_start": start - timedelta(days=longest_days),
        "attribution_campaigns": [goal.campaign_id for goal in goals],
        "attribution_events": [goal.event_name for goal in goals],
        "attribution_paths": [goal.path for goal in goals],
        "attribution_click_ms": [goal.post_click_days * DAY_MILLISECONDS for goal in goals],
        "attribution_view_ms": [goal.post_view_days * DAY_MILLISECONDS for goal in goals],
        "attribution_goal_events": sorted({goal.event_name for goal in goals if goal.event_name}),
        "attribution_goal_pages": sorted({goal.path for goal in goals if not goal.event_name}),
    }
    inserted = ""
    if inserted_from is not None:
        inserted = "AND inserted_at >= {attribution_inserted_from:DateTime('UTC')}"
        parameters["attribution_inserted_from"] = inserted_from
    ad_events_in_range = """
        site_id IN {attribution_sites:Array(String)}
        AND timestamp >= {attribution_touch_start:DateTime64(3, 'UTC')}
        AND timestamp < {attribution_end:DateTime64(3, 'UTC')}
        AND campaign_id IN {attribution_campaigns:Array(UInt64)}
        AND is_bot = 0
    """
    sql = f"""
        WITH conversions AS (
            SELECT site_id, event_id, visitor_id, timestamp, event_type, event_name, pathname
            FROM page_events
            WHERE site_id IN {{attribution_sites:Array(String)}}
              AND timestamp >= {{attribution_start:DateTime64(3, 'UTC')}}
              AND timestamp < {{attribution_end:DateTime64(3, 'UTC')}}
              AND is_bot = 0
              AND ((event_type = 'event'
                    AND has({{attribution_goal_events:Array(String)}}, event_name))
                   OR (event_type = 'pageview'
                       AND has({{attribution_goal_pages:Array(String)}}, pathname)))
              {inserted}
        ),
        touches AS (
            SELECT site_id AS touch_site, visitor AS touch_visitor, campaign_id AS touch_campaign,
                   ad_id AS touch_ad, timestamp AS touched_at, is_click,
                   indexOf({{attribution_campaigns:Array(UInt64)}}, campaign_id) AS goal,
                   arrayElement({{attribution_events:Array(String)}}, goal) AS goal_event,
                   arrayElement({{attribution_paths:Array(String)}}, goal) AS goal_path,
                   if(is_click, arrayElement({{attribution_click_ms:Array(UInt64)}}, goal),
                      arrayElement({{attribution_view_ms:Array(UInt64)}}, goal)) AS window_ms
            FROM (
                SELECT site_id, visitor_id AS visitor, campaign_id, ad_id, timestamp,
                       event_type = 'click' AS is_click
                FROM ad_events
                WHERE {ad_events_in_range}
                  AND event_type IN ('impression', 'click')
                  AND visitor_id IN (SELECT visitor_id FROM conversions)
                UNION ALL
                SELECT clicked.site_id, shown.visitor_id, clicked.campaign_id, clicked.ad_id,
                       clicked.timestamp, 1
                FROM (
                    SELECT site_id, impression_id, visitor_id, campaign_id, ad_id, timestamp
                    FROM ad_events WHERE {ad_events_in_range} AND event_type = 'click'
                ) AS clicked
                INNER JOIN (
                    SELECT site_id, impression_id, visitor_id
                    FROM ad_events
                    WHERE {ad_events_in_range} AND event_type = 'impression'
                      AND visitor_id IN (SELECT visitor_id FROM conversions)
                ) AS shown
                ON clicked.site_id = shown.site_id AND clicked.impression_id = shown.impression_id
                WHERE shown.visitor_id != clicked.visitor_id
            )
            WHERE window_ms > 0
        )
        SELECT site_id AS conversion_site, toString(event_id) AS conversion_id,
               timestamp AS converted_at,
               argMax((touch_campaign, touch_ad),
                      (is_click, touched_at, touch_campaign, touch_ad)) AS last_touch,
               last_touch.1 AS campaign, last_touch.2 AS ad, max(is_click) AS post_click
        FROM conversions
        INNER JOIN touches
            ON conversions.site_id = touches.touch_site
            AND conversions.visitor_id = touches.touch_visitor
        WHERE touched_at <= timestamp
          AND toUnixTimestamp64Milli(timestamp) - toUnixTimestamp64Milli(touched_at) <= window_ms
          AND if(goal_event = '', event_type = 'pageview',
                 event_type = 'event' AND event_name = goal_event)
          AND (goal_path = '' OR pathname = goal_path)
        GROUP BY site_id, event_id, timestamp
    """  # noqa: S608 (only fixed fragments are formatted in; values are parameters)
    return sql, parameters


def conversions_attributed(
    *,
    site_ids: Sequence[str],
    goals: Sequence[CampaignGoal],
    start: datetime,
    end: datetime,
    inserted_from: datetime | None = None,
) -> list[AttributedConversion]:
    """The attributed conversions of ``attributed_conversions_sql``, one by one."""
    if not goals or not site_ids:
        return []
    sql, parameters = attributed_conversions_sql(
        site_ids=site_ids, goals=goals, start=start, end=end, inserted_from=inserted_from
    )
    columns = "conversion_site, conversion_id, converted_at, campaign, ad, post_click"
    query = f"SELECT {columns} FROM ({sql})"  # noqa: S608 (fixed SQL, values are parameters)
    found = clickhouse.get_client().query(query, parameters=parameters).result_rows
    return [
        AttributedConversion(
            site_id=site,
            event_id=event_id,
            timestamp=moment,
            campaign_id=int(campaign),
            ad_id=int(ad),
            post_click=bool(post_click),
        )
        for site, event_id, moment, campaign, ad, post_click in found
    ]
