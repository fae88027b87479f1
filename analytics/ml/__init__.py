"""The ML layer (ARCHITECTURE.md flow 7): dbt builds the feature marts in ClickHouse
(``dbt_runner``, with ``dbt_chdb`` for the embedded profile), the marts export to Parquet
(``export``), and the models train on them."""
