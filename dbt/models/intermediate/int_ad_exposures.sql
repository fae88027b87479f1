{{ config(order_by='(site_id, impression_at, impression_id)') }}
-- One row per ad impression, with
-- - the visit it was shown in: the visitor's latest page event at or before the impression,
--   if it is at most session_gap_minutes old (ASOF join), and how far into that visit it was;
-- - what the visitor had done with ads before it (earlier impressions and clicks);
-- - what followed: a click on it (the CTR label), viewability, and a conversion of the visitor
--   within conversion_window_days after it.
{% set gap_ms = var('session_gap_minutes') * 60 * 1000 %}
{% set window_ms = var('conversion_window_days') * 24 * 3600 * 1000 %}

with impressions as (
    select *
    from {{ ref('stg_ad_events') }}
    where event_type = 'impression' and impression_id != ''
    order by event_at, event_id
    limit 1 by impression_id
),

clicks as (
    select impression_id, min(event_at) as clicked_at, toUInt32(count()) as clicks
    from {{ ref('stg_ad_events') }}
    where event_type = 'click' and impression_id != ''
    group by impression_id
),

viewables as (
    select impression_id, min(event_at) as viewable_at
    from {{ ref('stg_ad_events') }}
    where event_type = 'viewable' and impression_id != ''
    group by impression_id
),

-- Impressions and first clicks of each visitor in time order: the sums over the rows before an
-- impression are what was known when it was served. At equal times the impression comes first,
-- so a click that happened at the same millisecond is not "before" it.
ad_activity as (
    select site_id, visitor_id, campaign_id, impression_id, event_at, 1 as is_impression, 0 as is_click
    from impressions
    union all
    select i.site_id, i.visitor_id, i.campaign_id, c.impression_id, c.clicked_at, 0, 1
    from clicks as c
    inner join impressions as i on i.impression_id = c.impression_id
),

history as (
    select
        impression_id,
        toUInt32(sum(is_impression) over before_in_visitor) as prior_impressions,
        toUInt32(sum(is_click) over before_in_visitor) as prior_clicks,
        toUInt32(sum(is_impression) over before_in_campaign) as prior_campaign_impressions
    from ad_activity
    -- An impression without a visitor id has no history: it is its own partition.
    window
        before_in_visitor as (
            partition by site_id, if(visitor_id = '', impression_id, visitor_id)
            order by event_at, is_click, impression_id
            rows between unbounded preceding and 1 preceding
        ),
        before_in_campaign as (
            partition by site_id, if(visitor_id = '', impression_id, visitor_id), campaign_id
            order by event_at, is_click, impression_id
            rows between unbounded preceding and 1 preceding
        )
    qualify is_impression = 1
),

placed as (
    select
        i.impression_id as impression_id,
        i.site_id as site_id,
        i.event_at as impression_at,
        i.visitor_id as visitor_id,
        i.campaign_id as campaign_id,
        i.ad_id as ad_id,
        i.placement_id as placement_id,
        i.creative_type as creative_type,
        i.pathname as pathname,
        i.country as country,
        i.device_type as device_type,
        -- ASOF LEFT JOIN fills a missing match with defaults: session_id '' means no page event.
        p.session_id as last_session_id,
        p.session_number as last_session_number,
        p.session_started_at as last_session_started_at,
        p.event_at as last_page_event_at,
        p.pathname as last_pathname,
        p.pageviews_so_far as last_pageviews_so_far,
        p.session_id != ''
            and toUnixTimestamp64Milli(i.event_at) - toUnixTimestamp64Milli(p.event_at)
                <= {{ gap_ms }} as in_session
    from impressions as i
    asof left join {{ ref('int_page_events_sessionized') }} as p
        on i.site_id = p.site_id and i.visitor_id = p.visitor_id and i.event_at >= p.event_at
),

conversions as (
    select site_id, visitor_id, assumeNotNull(converted_at) as conversion_at
    from {{ ref('int_sessions') }}
    where converted = 1  -- so converted_at is set
)

select
    placed.impression_id as impression_id,
    placed.site_id as site_id,
    placed.impression_at as impression_at,
    placed.visitor_id as visitor_id,
    if(in_session, last_session_id, null) as session_id,
    placed.campaign_id as campaign_id,
    placed.ad_id as ad_id,
    placed.placement_id as placement_id,
    if(placed.creative_type != '', placed.creative_type, {{ ad_creative('placed.ad_id', 0) }})
        as creative_type,
    {{ ad_creative('placed.ad_id', 1) }} as creative_size,
    -- The page the ad was on: as the ad event says, else the visit's current page.
    if(placed.pathname != '', placed.pathname, if(in_session, last_pathname, '')) as page_path,
    placed.country as country,
    placed.device_type as device_type,
    toUInt8(in_session) as in_session,
    -- Visits before this one: within a visit, its number minus one; after a visit ended, all
    -- the visits so far.
    toUInt32(multiIf(
        in_session, last_session_number - 1,
        last_session_id != '', last_session_number,
        0
    )) as previous_sessions,
    -- Pageviews of the visit before the page showing the ad (that page itself not counted).
    toUInt32(if(in_session and last_pageviews_so_far > 0, last_pageviews_so_far - 1, 0))
        as pageviews_before,
    toUInt32(if(in_session, dateDiff('second', last_session_started_at, placed.impression_at), 0))
        as seconds_in_session,
    history.prior_impressions as prior_impressions,
    history.prior_clicks as prior_clicks,
    history.prior_campaign_impressions as prior_campaign_impressions,
    toUInt8(viewables.impression_id != '') as viewable,
    toUInt8(clicks.impression_id != '') as clicked,
    if(clicked = 1, clicks.clicked_at, null) as clicked_at,
    toUInt8(
        conversions.site_id != ''
        and toUnixTimestamp64Milli(conversions.conversion_at)
            - toUnixTimestamp64Milli(placed.impression_at) <= {{ window_ms }}
    ) as converted_after,
    if(converted_after = 1, conversions.conversion_at, null) as converted_at
from placed
inner join history on history.impression_id = placed.impression_id
left join clicks on clicks.impression_id = placed.impression_id
left join viewables on viewables.impression_id = placed.impression_id
asof left join conversions
    on placed.site_id = conversions.site_id
    and placed.visitor_id = conversions.visitor_id
    and placed.impression_at <= conversions.conversion_at
