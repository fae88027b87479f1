{{ config(order_by='(site_id, visitor_id, event_at)') }}
-- Every page event with the visit it belongs to. A visit is a visitor's run of events with no
-- gap longer than session_gap_minutes (computed here, not taken from the tracker's session id,
-- so web, apps and generated traffic are cut the same way). Also, per event, how many
-- pageviews the visit had so far: what int_ad_exposures needs to place an impression.
{% set gap_ms = var('session_gap_minutes') * 60 * 1000 %}

with ordered as (
    select
        *,
        -- The first event of a visitor has no previous one: the epoch makes it start a visit.
        lagInFrame(event_at, 1, toDateTime64(0, 3, 'UTC')) over (
            partition by site_id, visitor_id
            order by event_at, event_id
            rows between 1 preceding and current row
        ) as previous_event_at
    from {{ ref('stg_page_events') }}
),

numbered as (
    select
        *,
        toUInt32(sum(toUInt32(
            toUnixTimestamp64Milli(event_at) - toUnixTimestamp64Milli(previous_event_at)
            > {{ gap_ms }}
        )) over (
            partition by site_id, visitor_id
            order by event_at, event_id
            rows between unbounded preceding and current row
        )) as session_number
    from ordered
)

select
    concat(site_id, ':', visitor_id, ':', toString(session_number)) as session_id,
    session_number,
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
    min(event_at) over (partition by site_id, visitor_id, session_number) as session_started_at,
    toUInt32(sum(toUInt32(event_type = 'pageview')) over (
        partition by site_id, visitor_id, session_number
        order by event_at, event_id
        rows between unbounded preceding and current row
    )) as pageviews_so_far
from numbered
