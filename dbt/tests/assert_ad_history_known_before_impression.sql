-- The visitor's ad history of an impression only counts what came before it: clicks on earlier
-- impressions (never more than those impressions), and the first impression of a visitor has
-- no history at all.
with exposures as (
    select
        *,
        row_number() over (
            partition by site_id, visitor_id order by impression_at, impression_id
        ) as position
    from {{ ref('int_ad_exposures') }}
    where visitor_id != ''
)

select impression_id, prior_impressions, prior_clicks, position
from exposures
where prior_clicks > prior_impressions
   or prior_campaign_impressions > prior_impressions
   or (position = 1 and prior_impressions + prior_clicks > 0)
