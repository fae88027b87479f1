-- The label `clicked` marks exactly the impressions that have a click event of people.
with clicked_impressions as (
    select distinct impression_id
    from {{ ref('stg_ad_events') }}
    where event_type = 'click'
      and impression_id in (select impression_id from {{ ref('mart_ctr_features') }})
)

select
    (select count() from clicked_impressions) as click_events,
    (select countIf(clicked = 1) from {{ ref('mart_ctr_features') }}) as labelled
where click_events != labelled
