"""Event time: clock skew corrected by ``sent_at``, events from the future dated to their
arrival, and events older than the deduplication window refused (their id would no longer be
remembered, so a retry of them would be stored twice), for page events one by one and for ad
events with a 400."""

from __future__ import annotations

import json
import uuid
from typing import Any

import msgspec
import pytest

from events.rows import PageRow
from events.schemas import AdEventPayload, envelope_decoder
from events.tables import DEDUP_WINDOW_DAYS
from ingest.enrichment import UserAgentInfo
from ingest.selectors import SiteConfig, forget_site_configs
from ingest.services import (
    MAX_EVENT_AGE_MS,
    TOO_OLD,
    EventTooOld,
    RequestFacts,
    ad_row_from_event,
    event_time_ms,
    page_rows_from_batch,
)
from ingest.sinks import Acceptance
from tests.tracking_client import TrackingClient, delivered_ad_event

NOW = 1_800_000_000_000
DAY_MS = 86_400_000
SITE = SiteConfig(
    public_id="shop",
    allowed_domains=("shop.example",),
    secrets=("secret",),
    retention_days=400,
    analytics_enabled=True,
    ads_enabled=True,
    respect_do_not_track=False,
)
FACTS = RequestFacts(
    ip="81.2.69.142",
    user_agent="test",
    agent=UserAgentInfo("Chrome", "120", "Windows", "10", "desktop", False),
    country="GB",
    region="",
    city="",
    received_ms=NOW,
    do_not_track=False,
)


def test_the_age_limit_is_the_deduplication_window():
    assert MAX_EVENT_AGE_MS == DEDUP_WINDOW_DAYS * DAY_MS
    assert TOO_OLD == "older than 7 days: not accepted"


def test_clock_skew_is_corrected_by_sent_at():
    # The device clock is one hour fast: its event from 10 s before sending lands 10 s ago.
    fast = 3_600_000
    assert (
        event_time_ms(sent_ms=NOW + fast - 10_000, sent_at=NOW + fast, received_ms=NOW)
        == NOW - 10_000
    )
    assert event_time_ms(sent_ms=None, sent_at=None, received_ms=NOW) == NOW


def test_events_from_the_future_are_dated_to_their_arrival():
    assert event_time_ms(sent_ms=NOW + 60_000, sent_at=None, received_ms=NOW) == NOW
    # Sent "later" than it arrived by the sender's clock: still no later than the arrival.
    assert event_time_ms(sent_ms=NOW, sent_at=NOW - 5_000, received_ms=NOW) == NOW


def test_events_up_to_the_window_keep_their_time():
    oldest = NOW - MAX_EVENT_AGE_MS
    assert event_time_ms(sent_ms=oldest, sent_at=None, received_ms=NOW) == oldest
    assert event_time_ms(sent_ms=NOW - 6 * DAY_MS, sent_at=None, received_ms=NOW) == (
        NOW - 6 * DAY_MS
    )


def test_older_events_are_refused_not_redated():
    with pytest.raises(EventTooOld, match="older than 7 days"):
        event_time_ms(sent_ms=NOW - MAX_EVENT_AGE_MS - 1, sent_at=None, received_ms=NOW)
    with pytest.raises(EventTooOld):
        event_time_ms(sent_ms=0, sent_at=None, received_ms=NOW)


def test_the_age_is_measured_on_the_corrected_clock():
    # Queued 8 days on a device whose clock is 2 days slow: 8 days old for the server.
    slow = 2 * DAY_MS
    with pytest.raises(EventTooOld):
        event_time_ms(sent_ms=NOW - 8 * DAY_MS - slow, sent_at=NOW - slow, received_ms=NOW)
    # 6 days by the device's clock, which is 2 days fast: 6 days old, accepted.
    assert event_time_ms(sent_ms=NOW - 6 * DAY_MS + slow, sent_at=NOW + slow, received_ms=NOW) == (
        NOW - 6 * DAY_MS
    )


def _envelope(events: list[dict[str, Any]], **fields: Any) -> Any:
    return envelope_decoder.decode(
        json.dumps({"site": "shop", "events": events, **fields}).encode()
    )


def test_a_batch_rejects_the_old_events_one_by_one():
    envelope = _envelope(
        [
            {"type": "pageview", "url": "https://shop.example/new", "ts": NOW - 1_000},
            {"type": "pageview", "url": "https://shop.example/old", "ts": NOW - 8 * DAY_MS},
            {"type": "pageview", "url": "https://shop.example/future", "ts": NOW + 9_000},
        ],
        sent_at=NOW,
    )
    rows, rejections = page_rows_from_batch(
        envelope=envelope, site=SITE, visitor_id="v", facts=FACTS
    )
    assert [(item.index, item.error) for item in rejections] == [(1, TOO_OLD)]
    stored = [msgspec.json.decode(row, type=PageRow) for row in rows]
    assert [row.pathname for row in stored] == ["/new", "/future"]


def test_an_old_ad_event_is_refused():
    event = msgspec.convert(
        {
            "type": "impression",
            "site": "shop",
            "impression": "i",
            "campaign": 1,
            "ad": 2,
            "ts": NOW - 8 * DAY_MS,
        },
        AdEventPayload,
    )
    with pytest.raises(EventTooOld):
        ad_row_from_event(event=event, site=SITE, visitor_id="v", facts=FACTS)
    event.ts = NOW - DAY_MS
    event_id, _ = ad_row_from_event(event=event, site=SITE, visitor_id="v", facts=FACTS)
    assert event_id


class RecordingSink:
    def __init__(self) -> None:
        self.page_rows: list[bytes] = []

    def submit_page_rows(self, rows: list[bytes], *, key: str) -> Acceptance:
        self.page_rows.extend(rows)
        return Acceptance.settled_now()


@pytest.fixture
def sink(monkeypatch):
    from ingest import endpoints

    recording = RecordingSink()
    monkeypatch.setattr(endpoints, "get_sink", lambda: recording)
    return recording


@pytest.fixture
def shop(site):
    site.allowed_domains = ["shop.example"]
    site.save()
    forget_site_configs()
    return site


def _post(path: str, body: dict[str, Any]) -> Any:
    return TrackingClient().post(path, json.dumps(body), HTTP_USER_AGENT="Mozilla/5.0")


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def test_collect_answers_the_old_events_in_rejected(shop, sink):
    now = _now_ms()
    response = _post(
        "/collect",
        {
            "site": shop.public_id,
            "sent_at": now,
            "events": [
                {"type": "pageview", "url": "https://shop.example/", "ts": now - 1_000},
                {"type": "pageview", "url": "https://shop.example/", "ts": now - 8 * DAY_MS},
            ],
        },
    )
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "rejected": [{"index": 1, "error": TOO_OLD}]}
    assert len(sink.page_rows) == 1


def test_collect_with_only_old_events_is_a_400(shop, sink):
    now = _now_ms()
    old = {"type": "pageview", "url": "https://shop.example/", "ts": now - 30 * DAY_MS}
    response = _post("/collect", {"site": shop.public_id, "sent_at": now, "events": [old]})
    assert response.status_code == 400
    assert response.json() == {
        "error": "no valid event in the batch",
        "rejected": [{"index": 0, "error": TOO_OLD}],
    }
    assert sink.page_rows == []


def test_ad_event_older_than_the_window_is_a_400(shop):
    body = delivered_ad_event(
        site=shop.public_id,
        impression=f"imp-{uuid.uuid4().hex[:8]}",
        campaign=7,
        ad=70,
        ts=_now_ms() - 8 * DAY_MS,
    )
    response = _post("/ad-event", body)
    assert response.status_code == 400
    assert response.json() == {"error": "ad event older than 7 days: not accepted"}
