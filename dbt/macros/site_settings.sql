{#
  Per-site settings that live in Django, passed as vars by analytics.ml.dbt_runner.

  ClickHouse takes a time zone only as a constant, so local time is one branch per time zone in
  use: multiIf(site_id IN (...), toHour(ts, 'Europe/Paris'), ..., toHour(ts, 'UTC')).
  `template` names the column as TS and the zone as TZ, e.g. "toHour(TS, TZ)".
#}
{% macro by_site_timezone(template, timestamp, site_column='site_id') -%}
    {%- set zones = {} -%}
    {%- for site, zone in var('site_timezones', {}).items() -%}
        {%- do zones.setdefault(zone, []).append(site) -%}
    {%- endfor -%}
    {%- set utc = template | replace('TS', timestamp) | replace('TZ', "'UTC'") -%}
    {%- if zones -%}
    multiIf(
        {%- for zone, sites in zones | dictsort %}
        {{ site_column }} IN ({% for site in sites %}{{ sql_string(site) }}{{ ", " if not loop.last }}{% endfor %}),
        {{ template | replace('TS', timestamp) | replace('TZ', sql_string(zone)) }},
        {%- endfor %}
        {{ utc }}
    )
    {%- else -%}
    {{ utc }}
    {%- endif -%}
{%- endmacro %}

{% macro local_hour(timestamp, site_column='site_id') -%}
    {{ by_site_timezone('toHour(TS, TZ)', timestamp, site_column) }}
{%- endmacro %}

{# 1 = Monday ... 7 = Sunday #}
{% macro local_weekday(timestamp, site_column='site_id') -%}
    {{ by_site_timezone('toDayOfWeek(TS, 0, TZ)', timestamp, site_column) }}
{%- endmacro %}

{# The event name that is the conversion goal of the row's site. #}
{% macro conversion_goal(site_column='site_id') -%}
    {%- set goals = var('site_conversion_goals', {}) -%}
    {%- if goals -%}
    transform(
        toString({{ site_column }}),
        [{% for site in goals %}{{ sql_string(site) }}{{ ", " if not loop.last }}{% endfor %}],
        [{% for site in goals %}{{ sql_string(goals[site]) }}{{ ", " if not loop.last }}{% endfor %}],
        {{ sql_string(var('conversion_goal')) }}
    )
    {%- else -%}
    {{ sql_string(var('conversion_goal')) }}
    {%- endif -%}
{%- endmacro %}

{# An ad's creative kind (position 0) or size (position 1) as authored in Django; '' if unknown. #}
{% macro ad_creative(ad_column, position) -%}
    {%- set creatives = var('ad_creatives', {}) -%}
    {%- if creatives -%}
    transform(
        {{ ad_column }},
        [{% for ad in creatives %}toUInt64({{ ad | int }}){{ ", " if not loop.last }}{% endfor %}],
        [{% for ad in creatives %}{{ sql_string(creatives[ad][position]) }}{{ ", " if not loop.last }}{% endfor %}],
        ''
    )
    {%- else -%}
    ''
    {%- endif -%}
{%- endmacro %}
