"""The event model's one definition of each raw table: the row structs (events.rows), the DDL
(events.tables) and what ClickHouse holds (system.columns) name the same columns."""

from __future__ import annotations

import uuid

import msgspec
import pytest

from events.rows import AdRow, PageRow, encoder, essentials_decoder
from events.tables import RAW_TABLES, row_columns
from naboria import clickhouse

ROW_STRUCTS = {"page_events": PageRow, "ad_events": AdRow}


def page_row(**changes: object) -> bytes:
    row = PageRow(
        event_id=str(uuid.uuid4()),
        site_id="site1",
        timestamp="2026-11-22 10:00:00.000",
        received_at="2026-11-22 10:00:00.100",
        event_type="pageview",
        visitor_id="v1",
        consent_state="none",
        pathname="/",
        url="https://example.com/",
        retention_days=30,
    )
    return encoder.encode(msgspec.structs.replace(row, **changes))


@pytest.mark.parametrize("table", sorted(RAW_TABLES))
def test_row_structs_have_exactly_the_columns_rows_carry(table: str) -> None:
    # (The structs list required fields first; JSONEachRow matches columns by name.)
    assert sorted(ROW_STRUCTS[table].__struct_fields__) == sorted(row_columns(table))


@pytest.mark.clickhouse
@pytest.mark.usefixtures("clickhouse_schema")
@pytest.mark.parametrize("table", sorted(RAW_TABLES))
def test_clickhouse_holds_the_tables_as_defined(table: str) -> None:
    stored = clickhouse.get_client().query(
        "SELECT name, type FROM system.columns WHERE database = currentDatabase() "
        "AND table = {t:String} ORDER BY position",
        parameters={"t": table},
    )
    defined = [(column.name, column.type.split(" DEFAULT ")[0]) for column in RAW_TABLES[table]]
    assert [tuple(row) for row in stored.result_rows] == defined


@pytest.mark.parametrize(
    "changes",
    [{"retention_days": 0}, {"event_id": "not-a-uuid"}, {"timestamp": "2026-11-22"}],
)
def test_rows_clickhouse_would_store_wrongly_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(msgspec.ValidationError):
        essentials_decoder.decode(page_row(**changes))
