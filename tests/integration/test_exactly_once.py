"""Every event counted once, in the raw table and in what reports read (the session facts, live
and refreshed), under the duplicates clients and crashes make: a retried batch, the same id
several times in a batch, an insert whose answer was lost, rows stored without their ids being
recorded. Counts are compared with plain SQL on the raw table and with the hand-made data."""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from analytics import session_facts
from analytics.reports import traffic
from analytics.reports.query import Period, ReportQuery
from events import dedup
from events.dedup import EventKey
from events.ids import ad_event_id, id_millis, new_event_id
from events.rows import PageRow, clickhouse_time, encoder, essentials_decoder
from ingest import storage
from ingest.sinks import reset_sink
from naboria import clickhouse
from sites.models import Site
from tests.factories import SiteFactory
from tests.tracking_client import TrackingClient
from tests.unit.test_enrichment import WINDOWS_CHROME

pytestmark = [
    pytest.mark.clickhouse,
    pytest.mark.django_db,
    pytest.mark.usefixtures("clickhouse_schema", "direct_path"),
]


def post(site, events: list[dict[str, object]]) -> None:
    now = int(time.time() * 1000)
    response = TrackingClient().post(
        "/collect",
        data=json.dumps({"site": site.public_id, "sent_at": now, "events": events}),
        content_type="application/json",
        HTTP_USER_AGENT=WINDOWS_CHROME,
        REMOTE_ADDR="81.2.69.142",
    )
    assert response.status_code == 202, response.content


def raw_counts(site_id: str) -> tuple[int, int]:
    """(rows, distinct event ids) of the site in the raw table: plain SQL."""
    reset_sink()  # what the direct writer holds is stored now
    found = clickhouse.get_client().query(
        "SELECT count(), uniqExact(event_id) FROM page_events WHERE site_id = {s:String}",
        parameters={"s": site_id},
    )
    return tuple(int(value) for value in found.result_rows[0])  # type: ignore[return-value]


def reported_pageviews(site_id: str) -> tuple[int, int, int]:
    """Pageviews as the overview, the graph and the pages list count them."""
    today = datetime.now(UTC).date()
    query = ReportQuery(site_id=site_id, period=Period(today - timedelta(days=1), today, "UTC"))
    overview = traffic.overview(query)["period"]["pageviews"]
    graph = sum(point["pageviews"] for point in traffic.timeseries(query)["points"])
    pages = sum(row["pageviews"] for row in traffic.breakdown(query, dimension="pages")["results"])
    return overview, graph, pages


def pageviews(count: int, *, prefix: str = "/p") -> list[dict[str, object]]:
    now = int(time.time() * 1000)
    return [
        {
            "type": "pageview",
            "id": str(uuid.uuid4()),
            "url": f"https://example.com{prefix}{index}",
            "ts": now - 60_000 + index,
        }
        for index in range(count)
    ]


@pytest.mark.parametrize("refreshed", [False, True], ids=["live", "refreshed"])
def test_a_batch_resent_later_with_the_same_ids_counts_once(site, refreshed):
    batch = pageviews(3)
    post(site, batch)
    assert raw_counts(site.public_id) == (3, 3)
    if refreshed:
        session_facts.refresh()
    post(site, [*batch, *pageviews(1, prefix="/new")])  # the retry, with one new event
    assert raw_counts(site.public_id) == (4, 4)
    if refreshed:
        session_facts.refresh()
    assert reported_pageviews(site.public_id) == (4, 4, 4)


def test_the_same_id_five_times_in_one_batch_is_one_event(site):
    (event,) = pageviews(1)
    post(site, [event] * 5 + pageviews(2, prefix="/other"))
    assert raw_counts(site.public_id) == (3, 3)
    assert reported_pageviews(site.public_id) == (3, 3, 3)
    session_facts.refresh()
    assert reported_pageviews(site.public_id) == (3, 3, 3)


def test_an_event_id_counts_per_site(site, organization):
    other = cast(Site, SiteFactory(organization=organization))
    batch = pageviews(2)
    post(site, batch)
    post(other, batch)  # another site's client happens to send the same ids
    assert raw_counts(site.public_id) == (2, 2)
    assert raw_counts(other.public_id) == (2, 2)


def encoded_rows(
    site_id: str, count: int, *, event_ids: list[uuid.UUID | str] | None = None
) -> list[bytes]:
    now = int(time.time() * 1000)
    event_ids = event_ids or [uuid.uuid4() for _ in range(count)]
    return [
        encoder.encode(
            PageRow(
                event_id=str(event_ids[index]),
                site_id=site_id,
                timestamp=clickhouse_time(now - index),
                received_at=clickhouse_time(now),
                event_type="pageview",
                visitor_id="v",
                consent_state="none",
                pathname="/",
                url="https://example.com/",
                retention_days=30,
            )
        )
        for index in range(count)
    ]


def keys_of(rows: list[bytes]) -> list[EventKey]:
    return [EventKey.of(essentials_decoder.decode(row)) for row in rows]


def test_an_insert_whose_answer_was_lost_is_retried_without_a_second_copy(monkeypatch):
    """ClickHouse stored the batch but the writer saw an error (a timeout, a dropped
    connection): the retry, after the window's repair, stores nothing again."""
    site_id = f"lost-{uuid.uuid4().hex[:8]}"
    rows = encoded_rows(site_id, 50)
    real_insert = storage.insert_rows
    calls = []

    def insert_then_fail(table, encoded):
        real_insert(table, encoded)
        calls.append(len(encoded))
        if len(calls) == 1:
            raise ConnectionResetError("answer lost")

    monkeypatch.setattr(storage, "insert_rows", insert_then_fail)
    with pytest.raises(ConnectionResetError):
        storage.store_new_rows("page_events", rows, keys_of(rows))
    dedup.repair_window("page_events")
    assert storage.store_new_rows("page_events", rows, keys_of(rows)) == 0
    assert calls == [50, 0]
    assert raw_counts(site_id) == (50, 50)


def test_rows_stored_without_their_ids_are_found_after_the_repair():
    """A ClickHouse killed between writing the rows and the ids their view records: the
    writer's repair on start records them, so a redelivered batch is not stored twice."""
    site_id = f"repair-{uuid.uuid4().hex[:8]}"
    rows = encoded_rows(site_id, 20)
    storage.store_new_rows("page_events", rows, keys_of(rows))
    client = clickhouse.get_client()
    client.command(
        "DELETE FROM event_id_window WHERE site_id = {s:String}",
        parameters={"s": site_id},
        settings={"lightweight_deletes_sync": 2},
    )
    assert not dedup.stored_keys("page_events", keys_of(rows))  # the window lost them
    dedup.repair_window("page_events")
    assert dedup.stored_keys("page_events", keys_of(rows)) == set(keys_of(rows))
    assert storage.store_new_rows("page_events", rows, keys_of(rows)) == 0
    assert raw_counts(site_id) == (20, 20)


def test_an_id_in_capitals_is_the_same_event_and_text_that_is_no_uuid_is_refused():
    """Lookups write the ids into the query's parameter as text of their own: only canonical
    UUIDs get there (an upper-case id is the same event; anything else is refused before any
    query, and the drain dead-letters such a row)."""
    site_id = f"case-{uuid.uuid4().hex[:8]}"
    rows = encoded_rows(site_id, 3)
    storage.store_new_rows("page_events", rows, keys_of(rows))
    shouted = [
        json.dumps({**json.loads(row), "event_id": json.loads(row)["event_id"].upper()}).encode()
        for row in rows
    ]
    assert keys_of(shouted) == keys_of(rows)
    assert storage.store_new_rows("page_events", shouted, keys_of(shouted)) == 0
    assert raw_counts(site_id) == (3, 3)

    forged = json.loads(rows[0])
    forged["event_id"] = "x' OR 1=1) UNION SELECT '1', '2"[:36].ljust(36, "-")
    with pytest.raises(ValueError, match="not a UUID"):
        EventKey.of(essentials_decoder.decode(json.dumps(forged)))
    with pytest.raises(ValueError, match="canonical UUID"):
        dedup.stored_keys("page_events", [EventKey(site_id, forged["event_id"])])


DAY_MS = 86_400_000


def test_time_ordered_ids_are_found_whatever_their_time_or_version():
    """Lookups read the window from the oldest id time in their batch (events.dedup): a retry of
    an id made days ago, by a clock far ahead or behind, or of another version, is found alone
    and among fresh ids; ClickHouse reads the same time in each id as events.ids."""
    site_id = f"v7-{uuid.uuid4().hex[:8]}"
    now = int(time.time() * 1000)
    odd: list[uuid.UUID | str] = [
        new_event_id(at_millis=now - 3 * DAY_MS),
        new_event_id(at_millis=now + 3_600_000),
        new_event_id(at_millis=now + 400 * DAY_MS),
        new_event_id(at_millis=5),
        uuid.uuid4(),
        uuid.UUID(ad_event_id(site_id=site_id, impression="i", kind="click")),
    ]
    fresh = [new_event_id() for _ in range(5)]
    stored = encoded_rows(site_id, len(odd) + len(fresh), event_ids=[*odd, *fresh])
    assert storage.store_new_rows("page_events", stored, keys_of(stored)) == 11
    recorded = clickhouse.get_client().query(
        "SELECT toString(event_id), toUnixTimestamp64Milli(id_time) FROM event_id_window "
        "WHERE site_id = {s:String}",
        parameters={"s": site_id},
    )
    assert dict(recorded.result_rows) == {
        str(event_id): id_millis(str(event_id)) or 0 for event_id in [*odd, *fresh]
    }
    for index, row in enumerate(stored[: len(odd)]):
        retry = [row, *encoded_rows(site_id, 3, event_ids=[new_event_id() for _ in range(3)])]
        assert storage.store_new_rows("page_events", retry, keys_of(retry)) == 3, odd[index]
        assert storage.store_new_rows("page_events", [row], keys_of([row])) == 0, odd[index]
    assert storage.store_new_rows("page_events", stored, keys_of(stored)) == 0
    assert raw_counts(site_id) == (11 + 3 * len(odd), 11 + 3 * len(odd))


def test_a_lookup_of_fresh_ids_reads_only_the_recent_end_of_the_window():
    """Why ids carry their time: a batch of fresh ids does not read the window's older ids
    (a regression here makes every lookup read the whole week)."""
    client = clickhouse.get_client()
    client.command(
        "INSERT INTO event_id_window (event_table, site_id, event_id, timestamp) "
        "SELECT 'page_events', 'older-site', toUUID(concat(substring(millis, 1, 8), '-', "
        "substring(millis, 9, 4), '-7', substring(toString(generateUUIDv4(number)), 16, 21))), "
        "now() - INTERVAL 4 DAY FROM (SELECT number, leftPad(lower(hex(toUInt64("
        "toUnixTimestamp(now() - INTERVAL 5 DAY)) * 1000 + number)), 12, '0') AS millis "
        "FROM numbers(200000))"
    )
    client.command("OPTIMIZE TABLE event_id_window FINAL")
    fresh = sorted(new_event_id() for _ in range(100))
    plan = "\n".join(
        row[0]
        for row in client.query(
            f"EXPLAIN indexes = 1 {dedup.LOOKUP_SQL}",
            parameters=dedup.lookup_parameters("page_events", fresh),
        ).result_rows
    )
    primary_key = plan[plan.index("PrimaryKey") :]
    granules = re.search(r"Granules: (\d+)/(\d+)", primary_key)
    assert granules, plan
    selected, total = (int(n) for n in granules.groups())
    assert total >= 200_000 // 256
    assert selected <= 3, plan
