"""The ClickHouse migration runner: ordered, recorded, idempotent, strict about numbering."""

from __future__ import annotations

import pytest

from analytics import clickhouse_migrations
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
