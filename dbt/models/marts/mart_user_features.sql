{{ config(order_by='(site_id, visitor_id)') }}
-- User features: one row per visitor (of a site) over everything seen so far; event_date is
-- the day of the visitor's last activity (the partition of the Parquet export).

with visits as (
    select
        site_id,
        visitor_id,
        min(started_at) as first_seen_at,
        max(ended_at) as last_seen_at,
        toUInt32(count()) as sessions,
        toUInt32(uniqExact(toDate(started_at))) as active_days,
        toUInt32(sum(pageviews)) as total_pageviews,
        toUInt32(sum(custom_events)) as total_custom_events,
        toUInt32(sum(converted)) as total_converted_sessions,
        avg(pageviews) as avg_session_pageviews,
        avg(duration_seconds) as avg_session_seconds,
        argMin(referrer_medium, started_at) as first_referrer_medium,
        argMin(referrer_source, started_at) as first_referrer_source,
        argMax(device_type, started_at) as device_type,
        argMax(country, started_at) as country
    from {{ ref('int_sessions') }}
    group by site_id, visitor_id
),

ads as (
    select
        site_id,
        visitor_id,
        toUInt32(count()) as ad_impressions,
        toUInt32(sum(clicked)) as ad_clicks,
        max(impression_at) as last_impression_at
    from {{ ref('int_ad_exposures') }}
    where visitor_id != ''
    group by site_id, visitor_id
)

select
    CAST(v.site_id AS String) as site_id,
    v.visitor_id as visitor_id,
    toDate(greatest(v.last_seen_at, ads.last_impression_at)) as event_date,
    v.first_seen_at as first_seen_at,
    v.last_seen_at as last_seen_at,
    v.sessions as sessions,
    v.active_days as active_days,
    v.total_pageviews as pageviews,
    v.total_custom_events as custom_events,
    v.total_converted_sessions as converted_sessions,
    v.avg_session_pageviews as avg_session_pageviews,
    v.avg_session_seconds as avg_session_seconds,
    v.first_referrer_medium as first_referrer_medium,
    v.first_referrer_source as first_referrer_source,
    v.device_type as device_type,
    v.country as country,
    ads.ad_impressions as ad_impressions,
    ads.ad_clicks as ad_clicks,
    if(ads.ad_impressions > 0, ads.ad_clicks / ads.ad_impressions, 0) as ad_ctr
from visits as v
left join ads on ads.site_id = v.site_id and ads.visitor_id = v.visitor_id
