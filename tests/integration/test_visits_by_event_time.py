"""Visits by event time (events.visits): the same events in any order of arrival, in any
batches, give the same visits, live and from refreshed facts; late events join, split or merge
visits as they would have on time. Compared with a plain-Python statement of the rule."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics import session_facts
from analytics.reports.query import Period, ReportQuery, rows, visit_rows
from events.dedup import EventKey
from events.rows import PageRow, clickhouse_time, encoder, essentials_decoder
from events.visits import VISIT_GAP
from ingest.storage import store_new_rows

pytestmark = [pytest.mark.clickhouse, pytest.mark.usefixtures("clickhouse_schema")]
DAY = date(2026, 11, 20)
NOON = datetime(2026, 11, 20, 12, tzinfo=UTC)


@dataclass(frozen=True)
class Event:
    visitor: str
    minute: float  # after NOON
    kind: str  # pageview, event, engagement, outbound, download
    event_id: str

    @property
    def ms(self) -> int:
        return int((NOON + timedelta(minutes=self.minute)).timestamp() * 1000)


def row(site_id: str, event: Event) -> bytes:
    return encoder.encode(
        PageRow(
            event_id=event.event_id,
            site_id=site_id,
            timestamp=clickhouse_time(event.ms),
            received_at=clickhouse_time(event.ms),
            event_type=event.kind,
            visitor_id=event.visitor,
            consent_state="none",
            pathname=f"/{event.kind}",
            url=f"https://example.com/{event.kind}",
            retention_days=3650,
        )
    )


def store(site_id: str, events: list[Event]) -> None:
    encoded = [row(site_id, event) for event in events]
    store_new_rows(
        "page_events", encoded, [EventKey.of(essentials_decoder.decode(r)) for r in encoded]
    )


def stored_visits(site_id: str, *, refreshed: bool) -> list[tuple[str, int, int, int, int]]:
    """(visitor, start ms, end ms, pageviews, bounce) of each visit, as reports read them."""
    if refreshed:
        session_facts.refresh()
    query = ReportQuery(site_id=site_id, period=Period(DAY, DAY + timedelta(days=1), "UTC"))
    source = visit_rows(query)
    found = rows(
        f"""
        SELECT visitor_hash, toUnixTimestamp64Milli(started_at), toUnixTimestamp64Milli(ended_at),
               pageviews, is_bounce
        FROM ({source.sql}) ORDER BY visitor_hash, started_at
        """,  # noqa: S608
        source.parameters,
    )
    return sorted(tuple(int(value) for value in visit) for visit in found)  # type: ignore[misc]


def expected_visits(events: list[Event]) -> list[tuple[str, int, int, int, int]]:
    """The visit rule in plain Python, the way docs/analytics.md states it."""
    visits = []
    by_visitor: dict[str, list[Event]] = {}
    for event in events:
        by_visitor.setdefault(event.visitor, []).append(event)
    for visitor, own in by_visitor.items():
        own.sort(key=lambda e: (e.ms, e.kind != "pageview", e.event_id))
        runs: list[list[Event]] = []
        last_activity: int | None = None
        for event in own:
            if event.kind == "engagement":
                if runs:
                    runs[-1].append(event)
                continue
            if last_activity is None or event.ms - last_activity > VISIT_GAP.total_seconds() * 1000:
                runs.append([])
            runs[-1].append(event)
            last_activity = event.ms
        for run in runs:
            activity = [e for e in run if e.kind != "engagement"]
            views = sum(e.kind == "pageview" for e in run)
            if views == 0:
                continue  # no visit without a pageview
            bounce = int(views == 1 and len(activity) == 1)
            visits.append((visitor, activity[0].ms, activity[-1].ms, views, bounce))
    return visits


def with_hashes(site_id: str, visits: list[tuple[str, int, int, int, int]]) -> list[tuple]:
    """The expected visits with the visitor's hash in place of its id, as facts store it."""
    from naboria import clickhouse

    hashes = {
        visitor: int(
            clickhouse.get_client().command(
                "SELECT sipHash64({v:String})", parameters={"v": visitor}
            )
        )
        for visitor in {visit[0] for visit in visits}
    }
    return sorted((hashes[visit[0]], *visit[1:]) for visit in visits)


def ev(visitor: str, minute: float, kind: str = "pageview") -> Event:
    return Event(visitor, minute, kind, str(uuid.uuid4()))


@pytest.mark.parametrize("refreshed", [False, True], ids=["live", "refreshed"])
def test_an_earlier_pageview_arriving_later_makes_its_own_visit(refreshed):
    site_id = f"order-{uuid.uuid4().hex[:8]}"
    three_pm, one_pm = ev("v", 180), ev("v", 60)
    store(site_id, [three_pm])
    if refreshed:
        session_facts.refresh()
    store(site_id, [one_pm])  # stamped 13:00, arrives after the one stamped 15:00
    visits = stored_visits(site_id, refreshed=refreshed)
    assert [(visit[3], visit[2] - visit[1]) for visit in visits] == [(1, 0), (1, 0)]
    assert visits == with_hashes(site_id, expected_visits([three_pm, one_pm]))


@pytest.mark.parametrize("refreshed", [False, True], ids=["live", "refreshed"])
def test_engagement_forty_minutes_later_joins_its_visit_and_makes_none(refreshed):
    site_id = f"engaged-{uuid.uuid4().hex[:8]}"
    store(site_id, [ev("v", 0), ev("v", 40, "engagement")])
    (visit,) = stored_visits(site_id, refreshed=refreshed)
    assert visit[3:] == (1, 1)  # one pageview, still a bounce
    assert visit[2] == visit[1]  # engagement does not lengthen the visit


@pytest.mark.parametrize("refreshed", [False, True], ids=["live", "refreshed"])
def test_an_outbound_click_is_an_interaction_and_a_late_click_alone_is_no_visit(refreshed):
    site_id = f"outbound-{uuid.uuid4().hex[:8]}"
    store(site_id, [ev("a", 0), ev("a", 2, "outbound"), ev("b", 0), ev("b", 45, "download")])
    visits = stored_visits(site_id, refreshed=refreshed)
    assert sorted((visit[3], visit[4], visit[2] - visit[1]) for visit in visits) == [
        (1, 0, 120_000),  # a: not a bounce, lasts until the click
        (1, 1, 0),  # b: the download 45 minutes later belongs to no visit
    ]


@pytest.mark.parametrize("refreshed", [False, True], ids=["live", "refreshed"])
def test_a_late_pageview_merges_two_visits_and_one_across_midnight_joins(refreshed):
    site_id = f"merge-{uuid.uuid4().hex[:8]}"
    store(site_id, [ev("v", 0), ev("v", 50), ev("n", 11 * 60 + 50)])  # n: 23:50
    assert len(stored_visits(site_id, refreshed=refreshed)) == 3
    if refreshed:
        session_facts.refresh()
    store(site_id, [ev("v", 25), ev("n", 12 * 60 + 10)])  # v: 12:25 fills the gap; n: 00:10
    visits = stored_visits(site_id, refreshed=refreshed)
    assert sorted((visit[3], visit[2] - visit[1]) for visit in visits) == [
        (2, 20 * 60_000),  # n: 23:50 to 00:10 the next day, one visit of the first day
        (3, 50 * 60_000),  # v: 12:00, 12:25, 12:50
    ]


KINDS = st.sampled_from(["pageview", "pageview", "event", "engagement", "outbound"])
EVENTS = st.lists(
    st.builds(
        ev,
        st.sampled_from(["v1", "v2"]),
        st.floats(min_value=0, max_value=240).map(lambda minute: round(minute, 2)),
        KINDS,
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=EVENTS, order=st.randoms(use_true_random=False), batches=st.integers(1, 4))
def test_any_arrival_order_gives_the_visits_of_the_rule(events, order, batches):
    site_id = f"shuffled-{uuid.uuid4().hex[:8]}"
    arrival = list(events)
    order.shuffle(arrival)
    size = -(-len(arrival) // batches)
    for start in range(0, len(arrival), size):
        store(site_id, arrival[start : start + size])
        if order.random() < 0.3:
            session_facts.refresh()  # some visits come from facts, some are recomputed live
    expected = with_hashes(site_id, expected_visits(events))
    assert stored_visits(site_id, refreshed=False) == expected
    assert stored_visits(site_id, refreshed=True) == expected
