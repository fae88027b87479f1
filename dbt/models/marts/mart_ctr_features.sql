{{ config(order_by='(site_id, event_date, impression_at, impression_id)', partition_by='toYYYYMM(event_date)') }}
-- CTR features: one row per ad impression, every feature as it was known when the ad was
-- served (the visit so far, the visitor's earlier visits and ad history), and the label
-- `clicked`. The features cover all of the generator's click model (analytics/click_model.py):
-- device, local hour, campaign, returning, referrer medium, pageviews before the ad.

select
    x.impression_id as impression_id,
    CAST(x.site_id AS String) as site_id,
    toDate(x.impression_at) as event_date,
    x.impression_at as impression_at,
    x.visitor_id as visitor_id,
    x.session_id as session_id,
    x.campaign_id as campaign_id,
    x.ad_id as ad_id,
    x.placement_id as placement_id,
    x.creative_type as creative_type,
    x.creative_size as creative_size,
    toUInt8({{ local_hour('x.impression_at', 'x.site_id') }}) as local_hour,
    toUInt8({{ local_weekday('x.impression_at', 'x.site_id') }}) as local_weekday,
    x.device_type as device_type,
    CAST(x.country AS String) as country,
    -- Without a visit (no page event in the last session_gap_minutes) the source is unknown.
    if(x.in_session = 1, s.referrer_medium, 'unknown') as referrer_medium,
    if(x.in_session = 1, s.referrer_source, '') as referrer_source,
    if(x.in_session = 1, s.utm_campaign, '') as utm_campaign,
    x.page_path as page_path,
    -- '/products/12' -> '/products': the section generalises where the path is too specific.
    if(x.page_path = '', '', concat('/', splitByChar('/', x.page_path)[2])) as page_section,
    x.in_session as in_session,
    toUInt8(x.previous_sessions > 0) as is_returning,
    x.previous_sessions as previous_sessions,
    x.pageviews_before as pageviews_before,
    x.seconds_in_session as seconds_in_session,
    x.prior_impressions as prior_impressions,
    x.prior_clicks as prior_clicks,
    x.prior_campaign_impressions as prior_campaign_impressions,
    x.clicked as clicked
from {{ ref('int_ad_exposures') }} as x
left join {{ ref('int_sessions') }} as s on s.session_id = x.session_id
