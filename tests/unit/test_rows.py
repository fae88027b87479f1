"""The writer stage's row handling: the fields it checks and the columns it adds in front."""

import json
import uuid

import msgspec
import pytest

from events.rows import PageRow, encoder, essentials_decoder, kafka_provenance, with_fields
from ingest.sessions import Sessionizer


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
        properties={"plan": 'pro "gold"'},
    )
    return encoder.encode(msgspec.structs.replace(row, **changes))


def test_added_columns_come_first_and_the_row_stays_intact() -> None:
    line = page_row()
    fields = kafka_provenance('naboria."page', 3, 41) + b'"session_id":"abc",'
    stored = json.loads(with_fields(line, fields))
    assert stored == {
        **json.loads(line),
        "kafka_topic": 'naboria."page',
        "kafka_partition": 3,
        "kafka_offset": 41,
        "session_id": "abc",
    }


def test_ingest_leaves_the_writer_columns_out_so_they_are_never_duplicated() -> None:
    assert set(json.loads(page_row())).isdisjoint(
        {"session_id", "kafka_topic", "kafka_partition", "kafka_offset"}
    )


@pytest.mark.parametrize(
    "changes",
    [{"retention_days": 0}, {"event_id": "not-a-uuid"}, {"timestamp": "2026-11-22"}],
)
def test_rows_clickhouse_would_store_wrongly_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(msgspec.ValidationError):
        essentials_decoder.decode(page_row(**changes))


def test_sessions_continue_within_30_minutes_and_restart_after() -> None:
    sessions = Sessionizer()
    rows = [
        page_row(timestamp="2026-11-22 10:00:00.000"),
        page_row(timestamp="2026-11-22 10:29:00.000"),
        page_row(timestamp="2026-11-22 11:00:00.001"),
    ]
    ids = [json.loads(row)["session_id"] for row in sessions.assign_encoded(rows)]
    assert ids[0] == ids[1] != ids[2]
    # Deterministic: the same events processed again get the same ids.
    again = [json.loads(row)["session_id"] for row in Sessionizer().assign_encoded(rows)]
    assert again == ids
