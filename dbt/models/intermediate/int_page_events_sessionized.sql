{{ config(order_by='(site_id, visitor_id, event_at)') }}
-- Every page event of a visit, with the visit the product's visit rule gave it (visit_id from
-- the page_event_visits view: the same visits as the reports and the dashboard; events of no
-- visit left out). Also, per event, the visit's number among the visitor's visits, its start,
-- and how many pageviews it had so far: what int_ad_exposures needs to place an impression.

select
    visit_id as session_id,
    toUInt32(dense_rank() over (
        partition by site_id, visitor_id order by session_started_at
    )) as session_number,
    event_id,
    site_id,
    visitor_id,
    event_at,
    event_type,
    event_name,
    pathname,
    referrer_source,
    referrer_medium,
    utm_source,
    utm_medium,
    utm_campaign,
    country,
    device_type,
    browser,
    os,
    visible_ms,
    session_started_at,
    toUInt32(sum(toUInt32(event_type = 'pageview')) over (
        partition by site_id, visitor_id, visit_id
        order by event_at, event_type != 'pageview', event_id
        rows between unbounded preceding and current row
    )) as pageviews_so_far
from (
    select *, min(event_at) over (partition by site_id, visitor_id, visit_id) as session_started_at
    from {{ ref('stg_page_events') }}
    where visit_id != ''
)
