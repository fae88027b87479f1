-- Ad events of people: bots left out, duplicates folded (FINAL), event types of the protocol.
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
from {{ source('naboria', 'ad_events') }} final
where is_bot = 0
