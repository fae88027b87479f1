"""Sessions, rollups and visitor profiles, each filled by materialized views on insert.

All are AggregatingMergeTree tables holding partial aggregates: reports read them with
GROUP BY and -Merge/sum (never FINAL), so rows from different inserts combine correctly
whenever the background merges happen. ``is_bot`` is part of every key so reports and ad
billing can leave bots out without losing them. Sessions carry the day of their rows: a
session that crosses midnight has a row per day, merged by session_id in queries.
"""

TIME = "DateTime64(3, 'UTC')"

OPERATIONS = [
    f"""
    CREATE TABLE IF NOT EXISTS sessions
    (
        site_id LowCardinality(String),
        day Date,
        session_id String,
        visitor_id SimpleAggregateFunction(any, String),
        is_bot UInt8,
        started_at SimpleAggregateFunction(min, {TIME}),
        ended_at SimpleAggregateFunction(max, {TIME}),
        pageviews SimpleAggregateFunction(sum, UInt64),
        events SimpleAggregateFunction(sum, UInt64),
        engaged_ms SimpleAggregateFunction(sum, UInt64),
        entry_page AggregateFunction(argMin, String, {TIME}),
        exit_page AggregateFunction(argMax, String, {TIME}),
        referrer_source AggregateFunction(argMin, String, {TIME}),
        referrer_medium AggregateFunction(argMin, String, {TIME}),
        utm_campaign AggregateFunction(argMin, String, {TIME}),
        country SimpleAggregateFunction(any, LowCardinality(String)),
        device_type SimpleAggregateFunction(any, LowCardinality(String)),
        browser SimpleAggregateFunction(any, LowCardinality(String)),
        os SimpleAggregateFunction(any, LowCardinality(String)),
        retention_days SimpleAggregateFunction(max, UInt16)
    )
    ENGINE = AggregatingMergeTree
    PARTITION BY toYYYYMM(day)
    ORDER BY (site_id, day, is_bot, session_id)
    TTL day + toIntervalDay(retention_days)
    """,
    """
    CREATE MATERIALIZED VIEW IF NOT EXISTS sessions_mv TO sessions AS
    SELECT
        site_id,
        toDate(timestamp) AS day,
        session_id,
        any(visitor_id) AS visitor_id,
        is_bot,
        min(timestamp) AS started_at,
        max(timestamp) AS ended_at,
        countIf(event_type = 'pageview') AS pageviews,
        count() AS events,
        sumIf(visible_ms, event_type = 'engagement') AS engaged_ms,
        argMinStateIf(pathname, timestamp, event_type = 'pageview') AS entry_page,
        argMaxStateIf(pathname, timestamp, event_type = 'pageview') AS exit_page,
        argMinState(referrer_source, timestamp) AS referrer_source,
        argMinState(referrer_medium, timestamp) AS referrer_medium,
        argMinState(utm_campaign, timestamp) AS utm_campaign,
        any(country) AS country,
        any(device_type) AS device_type,
        any(browser) AS browser,
        any(os) AS os,
        max(retention_days) AS retention_days
    FROM page_events
    GROUP BY site_id, day, session_id, is_bot
    """,
    """
    CREATE TABLE IF NOT EXISTS pageviews_hourly
    (
        site_id LowCardinality(String),
        hour DateTime('UTC'),
        is_bot UInt8,
        hostname LowCardinality(String),
        pathname String,
        pageviews SimpleAggregateFunction(sum, UInt64),
        visitors AggregateFunction(uniq, String),
        visits AggregateFunction(uniq, String),
        retention_days SimpleAggregateFunction(max, UInt16)
    )
    ENGINE = AggregatingMergeTree
    PARTITION BY toYYYYMM(hour)
    ORDER BY (site_id, hour, is_bot, hostname, pathname)
    TTL hour + toIntervalDay(retention_days)
    """,
    """
    CREATE MATERIALIZED VIEW IF NOT EXISTS pageviews_hourly_mv TO pageviews_hourly AS
    SELECT
        site_id,
        toStartOfHour(timestamp) AS hour,
        is_bot,
        hostname,
        pathname,
        count() AS pageviews,
        uniqState(visitor_id) AS visitors,
        uniqState(session_id) AS visits,
        max(retention_days) AS retention_days
    FROM page_events
    WHERE event_type = 'pageview'
    GROUP BY site_id, hour, is_bot, hostname, pathname
    """,
    """
    CREATE TABLE IF NOT EXISTS sources_daily
    (
        site_id LowCardinality(String),
        day Date,
        is_bot UInt8,
        referrer_source LowCardinality(String),
        referrer_medium LowCardinality(String),
        utm_source LowCardinality(String),
        utm_medium LowCardinality(String),
        utm_campaign LowCardinality(String),
        pageviews SimpleAggregateFunction(sum, UInt64),
        visitors AggregateFunction(uniq, String),
        visits AggregateFunction(uniq, String),
        retention_days SimpleAggregateFunction(max, UInt16)
    )
    ENGINE = AggregatingMergeTree
    PARTITION BY toYYYYMM(day)
    ORDER BY (
        site_id, day, is_bot, referrer_medium, referrer_source, utm_source, utm_medium, utm_campaign
    )
    TTL day + toIntervalDay(retention_days)
    """,
    """
    CREATE MATERIALIZED VIEW IF NOT EXISTS sources_daily_mv TO sources_daily AS
    SELECT
        site_id,
        toDate(timestamp) AS day,
        is_bot,
        referrer_source,
        referrer_medium,
        utm_source,
        utm_medium,
        utm_campaign,
        countIf(event_type = 'pageview') AS pageviews,
        uniqState(visitor_id) AS visitors,
        uniqState(session_id) AS visits,
        max(retention_days) AS retention_days
    FROM page_events
    GROUP BY
        site_id, day, is_bot, referrer_source, referrer_medium, utm_source, utm_medium, utm_campaign
    """,
    """
    CREATE TABLE IF NOT EXISTS ad_performance_hourly
    (
        site_id LowCardinality(String),
        hour DateTime('UTC'),
        is_bot UInt8,
        campaign_id UInt64,
        ad_id UInt64,
        placement_id UInt64,
        impressions SimpleAggregateFunction(sum, UInt64),
        viewable_impressions SimpleAggregateFunction(sum, UInt64),
        clicks SimpleAggregateFunction(sum, UInt64),
        retention_days SimpleAggregateFunction(max, UInt16)
    )
    ENGINE = AggregatingMergeTree
    PARTITION BY toYYYYMM(hour)
    ORDER BY (site_id, hour, is_bot, campaign_id, ad_id, placement_id)
    TTL hour + toIntervalDay(retention_days)
    """,
    """
    CREATE MATERIALIZED VIEW IF NOT EXISTS ad_performance_hourly_mv TO ad_performance_hourly AS
    SELECT
        site_id,
        toStartOfHour(timestamp) AS hour,
        is_bot,
        campaign_id,
        ad_id,
        placement_id,
        countIf(event_type = 'impression') AS impressions,
        countIf(event_type = 'viewable') AS viewable_impressions,
        countIf(event_type = 'click') AS clicks,
        max(retention_days) AS retention_days
    FROM ad_events
    GROUP BY site_id, hour, is_bot, campaign_id, ad_id, placement_id
    """,
    f"""
    CREATE TABLE IF NOT EXISTS visitor_profiles
    (
        site_id LowCardinality(String),
        visitor_id String,
        first_seen SimpleAggregateFunction(min, {TIME}),
        last_seen SimpleAggregateFunction(max, {TIME}),
        visits AggregateFunction(uniq, String),
        pageviews SimpleAggregateFunction(sum, UInt64),
        ad_impressions SimpleAggregateFunction(sum, UInt64),
        ad_clicks SimpleAggregateFunction(sum, UInt64),
        device_type AggregateFunction(argMax, String, {TIME}),
        country AggregateFunction(argMax, String, {TIME}),
        is_bot SimpleAggregateFunction(max, UInt8),
        retention_days SimpleAggregateFunction(max, UInt16)
    )
    ENGINE = AggregatingMergeTree
    ORDER BY (site_id, visitor_id)
    TTL toDateTime(last_seen) + toIntervalDay(retention_days)
    """,
    """
    CREATE MATERIALIZED VIEW IF NOT EXISTS visitor_profiles_pages_mv TO visitor_profiles AS
    SELECT
        site_id,
        visitor_id,
        min(timestamp) AS first_seen,
        max(timestamp) AS last_seen,
        uniqState(session_id) AS visits,
        countIf(event_type = 'pageview') AS pageviews,
        argMaxState(toString(device_type), timestamp) AS device_type,
        argMaxState(toString(country), timestamp) AS country,
        max(is_bot) AS is_bot,
        max(retention_days) AS retention_days
    FROM page_events
    GROUP BY site_id, visitor_id
    """,
    """
    CREATE MATERIALIZED VIEW IF NOT EXISTS visitor_profiles_ads_mv TO visitor_profiles AS
    SELECT
        site_id,
        visitor_id,
        min(timestamp) AS first_seen,
        max(timestamp) AS last_seen,
        countIf(event_type = 'impression') AS ad_impressions,
        countIf(event_type = 'click') AS ad_clicks,
        argMaxState(toString(device_type), timestamp) AS device_type,
        argMaxState(toString(country), timestamp) AS country,
        max(is_bot) AS is_bot,
        max(retention_days) AS retention_days
    FROM ad_events
    GROUP BY site_id, visitor_id
    """,
]
