"""The ClickHouse migration runner: ordered, recorded, idempotent, strict about numbering."""

from __future__ import annotations

import uuid

import pytest

from analytics import clickhouse_migrations
from events.ids import new_event_id
from naboria import clickhouse

pytestmark = pytest.mark.clickhouse


def test_every_migration_is_recorded_and_a_second_run_applies_nothing(clickhouse_schema):
    names = [migration.name for migration in clickhouse_migrations.discover()]
    assert names == sorted(names)
    assert names[0] == "0001_raw_events"
    assert clickhouse_migrations.applied() == set(names)
    assert clickhouse_migrations.apply_pending() == []


def test_raw_event_tables_follow_the_storage_design(clickhouse_schema):
    client = clickhouse.get_client()
    for table in ("page_events", "ad_events"):
        engine, sorting_key, partition_key = client.query(
            "SELECT engine, sorting_key, partition_key FROM system.tables "
            "WHERE database = currentDatabase() AND name = {t:String}",
            parameters={"t": table},
        ).result_rows[0]
        assert engine == "ReplacingMergeTree"
        assert sorting_key.startswith("site_id, toDate(timestamp)")
        assert partition_key == "toYYYYMM(timestamp)"


def test_runner_applies_new_migrations_in_number_order(tmp_path, monkeypatch, clickhouse_schema):
    package = tmp_path / "extra_migrations"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "0002_second.py").write_text(
        "OPERATIONS = ['ALTER TABLE runner_probe ADD COLUMN IF NOT EXISTS b UInt8']\n"
    )
    (package / "0001_first.py").write_text(
        "OPERATIONS = ['CREATE TABLE IF NOT EXISTS runner_probe (a UInt8) "
        "ENGINE = MergeTree ORDER BY a']\n"
    )
    (package / "helpers.py").write_text("OPERATIONS = ['this is not a migration']\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    client = clickhouse.get_client()
    client.command("DROP TABLE IF EXISTS runner_probe")
    client.command("DELETE FROM schema_migrations WHERE name IN ('0001_first', '0002_second')")
    try:
        assert clickhouse_migrations.apply_pending("extra_migrations") == [
            "0001_first",
            "0002_second",
        ]
        assert clickhouse_migrations.apply_pending("extra_migrations") == []
        columns = client.query(
            "SELECT name FROM system.columns WHERE table = 'runner_probe' "
            "AND database = currentDatabase() ORDER BY position"
        ).result_rows
        assert columns == [("a",), ("b",)]
    finally:
        client.command("DROP TABLE IF EXISTS runner_probe")
        client.command("DELETE FROM schema_migrations WHERE name IN ('0001_first', '0002_second')")


def test_two_migrations_with_one_number_are_refused(tmp_path, monkeypatch):
    package = tmp_path / "clashing_migrations"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("0001_a", "0001_b"):
        (package / f"{name}.py").write_text("OPERATIONS = []\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RuntimeError, match="share a number"):
        clickhouse_migrations.discover("clashing_migrations")


def test_an_installation_with_the_first_window_gets_the_time_ordered_one(clickhouse_schema):
    """0006 on an installation that has 0005's ``event_ids`` (and its views): the ids of stored
    rows are in ``event_id_window`` afterwards, the old window is gone, and new inserts are
    recorded in the new one; applied twice, it changes nothing more."""
    client = clickhouse.get_client()
    client.command(
        "CREATE TABLE event_ids (event_table LowCardinality(String), "
        "site_id LowCardinality(String), event_id UUID, timestamp DateTime('UTC'), "
        "inserted_at DateTime('UTC') DEFAULT now()) ENGINE = ReplacingMergeTree "
        "ORDER BY (event_table, site_id, event_id)"
    )
    client.command(
        "CREATE MATERIALIZED VIEW page_events_ids_mv TO event_ids AS SELECT 'page_events' AS "
        "event_table, site_id, event_id, toDateTime(timestamp) AS timestamp FROM page_events"
    )
    site_id = f"upgrade-{uuid.uuid4().hex[:8]}"
    before, after = (str(uuid.uuid4()), new_event_id())

    def insert(event_id: str) -> None:
        client.command(
            "INSERT INTO page_events (event_id, site_id, timestamp, received_at, event_type, "
            "retention_days) VALUES ({id:UUID}, {s:String}, now64(3), now64(3), 'pageview', 30)",
            parameters={"id": event_id, "s": site_id},
        )

    insert(before)
    (migration,) = [m for m in clickhouse_migrations.discover() if m.name.startswith("0006")]
    for _ in range(2):
        for statement in migration.operations:
            client.command(statement)
    insert(after)
    tables = {row[0] for row in client.query("SHOW TABLES").result_rows}
    assert not {"event_ids", "page_events_ids_mv"} & tables
    recorded = client.query(
        "SELECT toString(event_id) FROM event_id_window FINAL WHERE site_id = {s:String}",
        parameters={"s": site_id},
    ).result_rows
    assert sorted(recorded) == sorted([(before,), (after,)])
