{# A ClickHouse string literal: vars come from Django (site ids, time zones, event names). #}
{% macro sql_string(value) -%}
'{{ value | string | replace("\\", "\\\\") | replace("'", "\\'") }}'
{%- endmacro %}
