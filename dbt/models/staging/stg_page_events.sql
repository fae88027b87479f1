-- Page events of people, each with its visit as the product's visit rule makes it (the
-- page_event_visits view, events/visits.py): bots and rows without a visitor left out,
-- `timestamp` renamed event_at. Rows are stored once (deduplicated before insert): no FINAL.
select
    event_id,
    site_id,
    timestamp as event_at,
    event_type,
    event_name,
    visitor_id,
    visit_id,
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
from {{ source('naboria', 'page_event_visits') }}
where is_bot = 0 and visitor_id != ''
