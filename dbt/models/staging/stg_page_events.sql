-- Page events of people: bots and rows without a visitor (nothing to sessionise) left out, a
-- row a client sent twice folded into one (FINAL applies the raw table's ReplacingMergeTree).
select
    event_id,
    site_id,
    timestamp as event_at,
    event_type,
    event_name,
    visitor_id,
    session_id as tracker_session_id,
    pathname,
    referrer_source,
    referrer_medium,
    utm_source,
    utm_medium,
    utm_campaign,
    country,
    if(device_type = '', 'unknown', device_type) as device_type,
    browser,
    os,
    visible_ms,
    scroll_depth
from {{ source('naboria', 'page_events') }} final
where is_bot = 0 and visitor_id != ''
