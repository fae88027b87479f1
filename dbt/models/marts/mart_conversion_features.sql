{{ config(order_by='(site_id, event_date, started_at, session_id)', partition_by='toYYYYMM(event_date)') }}
-- Conversion features: one row per visit and the label `converted` (the visit reached the
-- site's goal). Columns describe the visit at its start (source, entry page, device, time,
-- the visitor's history) and then the whole visit (session_* and the ad columns), which
-- includes the way to the goal: see the column roles in schema.yml.

with visits as (
    select
        *,
        toUInt32(sum(converted) over (
            partition by site_id, visitor_id
            order by session_number
            rows between unbounded preceding and 1 preceding
        )) as previous_conversions,
        lagInFrame(ended_at, 1, toDateTime64(0, 3, 'UTC')) over (
            partition by site_id, visitor_id
            order by session_number
            rows between 1 preceding and current row
        ) as previous_ended_at
    from {{ ref('int_sessions') }}
),

-- (Grouped by the Nullable column itself: assumeNotNull of a null is whatever value lies
-- under it, not a safe key.)
ads as (
    select
        session_id as exposure_session_id,
        toUInt32(count()) as ad_impressions,
        toUInt32(sum(clicked)) as ad_clicks
    from {{ ref('int_ad_exposures') }}
    where session_id is not null
    group by session_id
)

select
    v.session_id as session_id,
    CAST(v.site_id AS String) as site_id,
    v.visitor_id as visitor_id,
    toDate(v.started_at) as event_date,
    v.started_at as started_at,
    toUInt8({{ local_hour('v.started_at', 'v.site_id') }}) as local_hour,
    toUInt8({{ local_weekday('v.started_at', 'v.site_id') }}) as local_weekday,
    v.device_type as device_type,
    v.country as country,
    v.browser as browser,
    v.os as os,
    v.referrer_medium as referrer_medium,
    v.referrer_source as referrer_source,
    v.utm_source as utm_source,
    v.utm_medium as utm_medium,
    v.utm_campaign as utm_campaign,
    v.entry_page as entry_page,
    if(v.entry_page = '', '', concat('/', splitByChar('/', v.entry_page)[2])) as entry_section,
    v.is_returning as is_returning,
    v.previous_sessions as previous_sessions,
    v.previous_conversions as previous_conversions,
    if(
        v.is_returning = 1,
        toFloat64(dateDiff('second', v.previous_ended_at, v.started_at)) / 86400,
        null
    ) as days_since_previous_session,
    v.pageviews as session_pageviews,
    v.custom_events as session_custom_events,
    v.duration_seconds as session_duration_seconds,
    v.engaged_ms as session_engaged_ms,
    ads.ad_impressions as session_ad_impressions,
    ads.ad_clicks as session_ad_clicks,
    v.converted as converted,
    v.converted_at as converted_at
from visits as v
left join ads on ads.exposure_session_id = v.session_id
