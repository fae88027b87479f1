-- Ad events of people: bots left out, event types of the protocol (stored once: no FINAL).
select
    event_id,
    impression_id,
    site_id,
    timestamp as event_at,
    event_type,
    visitor_id,
    campaign_id,
    ad_id,
    placement_id,
    creative_type,
    pathname,
    country,
    if(device_type = '', 'unknown', device_type) as device_type
from {{ source('naboria', 'ad_events') }}
where is_bot = 0
