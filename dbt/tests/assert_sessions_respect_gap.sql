-- Visits follow the product's visit rule (events/visits.py): inside a visit no two consecutive
-- activity events (everything but engagement) are further apart than session_gap_minutes, and
-- a visitor's next visit starts after such a gap.
{% set gap_ms = var('session_gap_minutes') * 60 * 1000 %}

with steps as (
    select
        session_id,
        session_number,
        toUnixTimestamp64Milli(event_at) - toUnixTimestamp64Milli(lagInFrame(event_at, 1, event_at) over (
            partition by site_id, visitor_id
            order by event_at, event_type != 'pageview', event_id
            rows between 1 preceding and current row
        )) as gap_ms,
        lagInFrame(session_number, 1, session_number) over (
            partition by site_id, visitor_id
            order by event_at, event_type != 'pageview', event_id
            rows between 1 preceding and current row
        ) as previous_session_number
    from {{ ref('int_page_events_sessionized') }}
    where event_type != 'engagement'
)

select *
from steps
where (session_number = previous_session_number and gap_ms > {{ gap_ms }})
   or (session_number != previous_session_number and gap_ms <= {{ gap_ms }})
