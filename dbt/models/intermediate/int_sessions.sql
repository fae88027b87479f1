{{ config(order_by='(site_id, visitor_id, started_at)') }}
-- One row per visit (30-minute gap, see int_page_events_sessionized), with where it came from
-- (the first pageview's referrer and UTM tags), what happened, and whether it reached the
-- site's conversion goal (a custom event, var conversion_goal / site_conversion_goals).
-- "First pageview" is argMin over (not a pageview, time): pageviews first, then by time.

select
    session_id,
    site_id,
    visitor_id,
    session_number,
    toUInt32(session_number - 1) as previous_sessions,
    toUInt8(session_number > 1) as is_returning,
    min(event_at) as started_at,
    -- Engagement reports on a pageview: it does not lengthen the visit (events/visits.py).
    maxIf(event_at, event_type != 'engagement') as ended_at,
    toUInt32(dateDiff('second', started_at, ended_at)) as duration_seconds,
    toUInt32(countIf(event_type = 'pageview')) as pageviews,
    toUInt32(countIf(event_type = 'event')) as custom_events,
    toUInt64(sumIf(visible_ms, event_type = 'engagement')) as engaged_ms,
    argMin(pathname, (event_type != 'pageview', event_at)) as entry_page,
    argMax(pathname, (event_type = 'pageview', event_at)) as exit_page,
    if(
        argMin(referrer_medium, (event_type != 'pageview', event_at)) = '',
        'unknown',
        argMin(referrer_medium, (event_type != 'pageview', event_at))
    ) as referrer_medium,
    argMin(referrer_source, (event_type != 'pageview', event_at)) as referrer_source,
    argMin(utm_source, (event_type != 'pageview', event_at)) as utm_source,
    argMin(utm_medium, (event_type != 'pageview', event_at)) as utm_medium,
    argMin(utm_campaign, (event_type != 'pageview', event_at)) as utm_campaign,
    argMin(device_type, event_at) as device_type,
    argMin(country, event_at) as country,
    argMin(browser, event_at) as browser,
    argMin(os, event_at) as os,
    toUInt32(countIf(event_type = 'event' and event_name = {{ conversion_goal() }})) as goal_events,
    toUInt8(goal_events > 0) as converted,
    if(
        converted,
        minIf(event_at, event_type = 'event' and event_name = {{ conversion_goal() }}),
        null
    ) as converted_at
from {{ ref('int_page_events_sessionized') }}
group by session_id, site_id, visitor_id, session_number
