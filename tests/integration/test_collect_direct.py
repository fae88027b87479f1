"""The tracking protocol end to end on the direct path (no Kafka): endpoint -> in-process
batch -> ClickHouse (chdb), with every status code of the protocol."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from django.db import OperationalError
from django.test import override_settings

from ingest import selectors
from ingest.selectors import forget_site_configs
from ingest.sinks import reset_sink
from naboria import clickhouse
from tests.tracking_client import UNKNOWN_CAMPAIGN, TrackingClient, delivered_ad_event
from tests.unit.test_enrichment import IPHONE, WINDOWS_CHROME

pytestmark = [
    pytest.mark.clickhouse,
    pytest.mark.django_db,
    pytest.mark.usefixtures("clickhouse_schema", "direct_path"),
]
VISITOR_IP = "81.2.69.142"


@pytest.fixture
def shop(site):
    site.allowed_domains = ["shop.example", "*.shop.example"]
    site.save()
    return site


def post(path: str, body: object, *, user_agent: str = WINDOWS_CHROME, **headers: str):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return TrackingClient().post(
        path,
        data=data,
        content_type=headers.pop("content_type", "application/json"),
        HTTP_USER_AGENT=user_agent,
        REMOTE_ADDR=VISITOR_IP,
        **{f"HTTP_{key.upper()}": value for key, value in headers.items()},
    )


def rows(query: str, **parameters: object) -> list[tuple]:
    reset_sink()  # flushes what the direct writer still holds
    return clickhouse.get_client().query(query, parameters=parameters).result_rows


def test_batch_is_enriched_stored_and_keeps_no_ip(shop):
    now = int(time.time() * 1000)
    response = post(
        "/collect",
        {
            "site": shop.public_id,
            "sent_at": now,
            "events": [
                {
                    "type": "pageview",
                    "url": "https://shop.example/shoes?utm_source=news&utm_medium=email",
                    "referrer": "https://www.google.com/search?q=shoes",
                    "ts": now - 1000,
                },
                {
                    "type": "event",
                    "name": "Signup",
                    "url": "https://shop.example/x",
                    "props": {"plan": "pro", "seats": 3},
                },
                {
                    "type": "engagement",
                    "url": "https://shop.example/shoes",
                    "visible_ms": 4200,
                    "scroll_depth": 75,
                },
                {
                    "type": "download",
                    "url": "https://shop.example/docs",
                    "target": "https://shop.example/a.pdf",
                },
            ],
        },
        user_agent=IPHONE,
        origin="https://www.shop.example",
    )
    assert response.status_code == 202, response.content
    assert response.json() == {"accepted": 4, "rejected": []}
    assert response["Access-Control-Allow-Origin"] == "https://www.shop.example"

    stored = rows(
        "SELECT event_type, event_name, pathname, referrer_source, referrer_medium, utm_source,"
        " country, browser, os, device_type, is_bot, consent_state, visitor_id, visit_id,"
        " visible_ms, scroll_depth, properties, target FROM page_event_visits"
        " WHERE site_id = {s:String} ORDER BY timestamp, event_type",
        s=shop.public_id,
    )
    by_type = {row[0]: row for row in stored}
    assert set(by_type) == {"pageview", "event", "engagement", "download"}
    pageview = by_type["pageview"]
    assert pageview[2:10] == (
        "/shoes",
        "news",
        "email",
        "news",
        "GB",
        "Mobile Safari",
        "iOS",
        "mobile",
    )
    assert pageview[10:12] == (0, "none")
    assert by_type["event"][1] == "Signup"
    assert by_type["event"][16] == {"plan": "pro", "seats": "3"}
    assert by_type["engagement"][14:16] == (4200, 75)
    assert by_type["download"][17] == "https://shop.example/a.pdf"
    visitors = {row[12] for row in stored}
    sessions = {row[13] for row in stored}
    assert len(visitors) == 1
    assert len(sessions) == 1
    assert "" not in sessions
    (visitor,) = visitors
    assert len(visitor) == 32
    assert VISITOR_IP not in visitor

    every_value = rows(
        "SELECT arrayStringConcat(arrayMap(x -> toString(x), [*]), '|') FROM page_events"
        " WHERE site_id = {s:String}",
        s=shop.public_id,
    )
    assert all(VISITOR_IP not in value for (value,) in every_value)


def test_consented_visitor_is_their_browser_id(shop):
    init = TrackingClient().get(f"/init?site={shop.public_id}").json()
    body = {
        "site": shop.public_id,
        "bid": init["bid"],
        "token": init["token"],
        "consent": {"analytics": True},
        "events": [{"type": "pageview", "url": "https://shop.example/"}],
    }
    assert post("/collect", body).status_code == 202
    assert rows(
        "SELECT visitor_id, consent_state FROM page_events WHERE site_id = {s:String}",
        s=shop.public_id,
    ) == [(init["bid"], "analytics")]


def test_bid_without_consent_is_not_used(shop):
    init = TrackingClient().get(f"/init?site={shop.public_id}").json()
    body = {
        "site": shop.public_id,
        "bid": init["bid"],
        "token": init["token"],
        "events": [{"type": "pageview", "url": "https://shop.example/"}],
    }
    assert post("/collect", body).status_code == 202
    (visitor,) = rows(
        "SELECT visitor_id FROM page_events WHERE site_id = {s:String}", s=shop.public_id
    )
    assert visitor[0] != init["bid"]


def test_bad_token_is_refused(shop):
    body = {
        "site": shop.public_id,
        "bid": "b123",
        "token": "0" * 64,
        "consent": {"analytics": True},
        "events": [{"type": "pageview", "url": "https://shop.example/"}],
    }
    response = post("/collect", body)
    assert response.status_code == 403
    assert "token" in response.json()["error"]


def test_bad_events_are_rejected_one_by_one(shop):
    body = {
        "site": shop.public_id,
        "events": [
            {"type": "pageview", "url": "https://shop.example/ok"},
            {"type": "teleport", "url": "https://shop.example/"},
            {"type": "pageview", "url": "x" * 3000},
            {
                "type": "event",
                "url": "https://shop.example/",
                "props": {str(i): i for i in range(31)},
            },
            {"type": "pageview"},
            {"type": "pageview", "url": "not a url"},
        ],
    }
    response = post("/collect", body)
    assert response.status_code == 202
    payload = response.json()
    assert payload["accepted"] == 1
    reasons = {item["index"]: item["error"] for item in payload["rejected"]}
    assert set(reasons) == {1, 2, 3, 4, 5}
    assert "teleport" in reasons[1]
    assert "2048" in reasons[2]
    assert "$.props" in reasons[3]
    assert "url" in reasons[4]


def test_a_batch_with_no_valid_event_is_a_400(shop):
    response = post("/collect", {"site": shop.public_id, "events": [{"type": "nope"}]})
    assert response.status_code == 400
    assert response.json()["rejected"][0]["index"] == 0


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "malformed"),
        ({"site": "x", "events": []}, 400, "length >= 1"),
        ({"events": [{"type": "pageview", "url": "https://a/"}]}, 400, "site"),
        (
            {"site": "nope", "events": [{"type": "pageview", "url": "https://a/"}]},
            404,
            "unknown site",
        ),
        (b"", 400, "empty body"),
        (b"x" * 70_000, 413, "larger"),
    ],
)
def test_protocol_errors(body, status, message):
    response = post("/collect", body)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_too_many_events(shop):
    events = [{"type": "pageview", "url": "https://shop.example/"}] * 101
    response = post("/collect", {"site": shop.public_id, "events": events})
    assert response.status_code == 400
    assert "length <= 100" in response.json()["error"]


def test_origin_outside_allowed_domains_is_refused(shop):
    body = {
        "site": shop.public_id,
        "events": [{"type": "pageview", "url": "https://evil.example/"}],
    }
    response = post("/collect", body, origin="https://evil.example")
    assert response.status_code == 403
    assert "evil.example" in response.json()["error"]


def test_method_content_type_and_preflight():
    assert TrackingClient().get("/collect").status_code == 405
    assert post("/collect", b"<xml/>", content_type="application/xml").status_code == 415
    preflight = TrackingClient().options("/collect", HTTP_ORIGIN="https://shop.example")
    assert preflight.status_code == 204
    assert "POST" in preflight["Access-Control-Allow-Methods"]


def test_send_beacon_text_plain_body_is_accepted(shop):
    body = json.dumps(
        {"site": shop.public_id, "events": [{"type": "pageview", "url": "https://shop.example/"}]}
    )
    assert post("/collect", body, content_type="text/plain").status_code == 202


def test_do_not_track_is_honoured_when_the_site_asks(shop):
    body = {
        "site": shop.public_id,
        "events": [{"type": "pageview", "url": "https://shop.example/"}],
    }
    response = post("/collect", body, dnt="1")
    assert response.json() == {"accepted": 0, "ignored": "do-not-track"}
    assert rows("SELECT count() FROM page_events WHERE site_id = {s:String}", s=shop.public_id) == [
        (0,)
    ]


def test_pixel_records_a_pageview(shop):
    response = TrackingClient().get(
        f"/p.gif?site={shop.public_id}&url=https://shop.example/nojs&ref=https://t.co/x",
        HTTP_USER_AGENT=WINDOWS_CHROME,
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "image/gif"
    assert rows(
        "SELECT pathname, referrer_medium FROM page_events WHERE site_id = {s:String}",
        s=shop.public_id,
    ) == [("/nojs", "social")]


def test_sessions_split_after_thirty_idle_minutes(shop):
    now = int(time.time() * 1000)
    minutes = 60_000
    events = [
        {"type": "pageview", "url": f"https://shop.example/{path}", "ts": now - offset * minutes}
        for path, offset in [("a", 50), ("b", 45), ("c", 5)]
    ]
    assert (
        post("/collect", {"site": shop.public_id, "sent_at": now, "events": events}).status_code
        == 202
    )
    visits = rows(
        "SELECT visit_id, count(), argMin(pathname, timestamp), argMax(pathname, timestamp)"
        " FROM page_event_visits WHERE site_id = {s:String} GROUP BY visit_id"
        " ORDER BY min(timestamp)",
        s=shop.public_id,
    )
    assert [row[1:] for row in visits] == [(2, "/a", "/b"), (1, "/c", "/c")]


def test_ad_event_answers_after_the_insert_and_counts_once(shop):
    body = delivered_ad_event(
        site=shop.public_id,
        impression=f"imp-{uuid.uuid4().hex[:8]}",
        campaign=UNKNOWN_CAMPAIGN,
        ad=70,
        placement=3,
    )
    first = post("/ad-event", body)
    assert first.status_code == 200
    assert first.json()["stored"] is True
    # Stored before the answer: visible without flushing anything.
    assert clickhouse.get_client().query(
        "SELECT count() FROM ad_events WHERE site_id = {s:String}", parameters={"s": shop.public_id}
    ).result_rows == [(1,)]
    again = post("/ad-event", body)
    assert again.json()["event_id"] == first.json()["event_id"]
    assert rows(
        "SELECT uniqExact(event_id) FROM ad_events WHERE site_id = {s:String}", s=shop.public_id
    ) == [(1,)]


GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def test_bot_events_are_stored_flagged_with_the_reason(shop):
    page = {
        "site": shop.public_id,
        "events": [{"type": "pageview", "url": "https://shop.example/"}],
    }
    assert post("/collect", page, user_agent=GOOGLEBOT).status_code == 202
    assert post("/collect", page).status_code == 202
    ad = delivered_ad_event(
        site=shop.public_id, impression="i-bot", campaign=UNKNOWN_CAMPAIGN, ad=70
    )
    assert post("/ad-event", ad, user_agent=GOOGLEBOT).status_code == 200

    flags = (
        "SELECT is_bot, bot_reason != '' FROM {t:Identifier} WHERE site_id = {s:String}"
        " ORDER BY is_bot"
    )
    assert rows(flags, t="page_events", s=shop.public_id) == [(0, False), (1, True)]
    assert rows(flags, t="ad_events", s=shop.public_id) == [(1, True)]
    assert rows(
        "SELECT bot_reason FROM page_events WHERE site_id = {s:String} AND is_bot",
        s=shop.public_id,
    ) == rows("SELECT bot_reason FROM ad_events WHERE site_id = {s:String}", s=shop.public_id)


def test_ad_event_validation(shop):
    response = post("/ad-event", {"type": "impression", "site": shop.public_id})
    assert response.status_code == 400
    assert "impression_token" in response.json()["error"]


def test_direct_path_flushes_waiting_events_on_shutdown(shop):
    with override_settings(INGEST_BATCH_SECONDS=600.0):
        reset_sink()
        body = {
            "site": shop.public_id,
            "events": [{"type": "pageview", "url": "https://shop.example/"}] * 3,
        }
        assert post("/collect", body).status_code == 202
        count = "SELECT count() FROM page_events WHERE site_id = {s:String}"
        client = clickhouse.get_client()
        assert client.query(count, parameters={"s": shop.public_id}).result_rows == [(0,)]
        reset_sink()  # what the atexit hook does when the web process stops
        assert client.query(count, parameters={"s": shop.public_id}).result_rows == [(3,)]


def test_ad_events_are_refused_when_the_site_has_ads_disabled(shop):
    shop.ads_enabled = False
    shop.save()
    forget_site_configs()
    response = post("/ad-event", delivered_ad_event(site=shop.public_id, impression="i"))
    assert response.status_code == 403
    assert "ads are disabled" in response.json()["error"]


def test_database_outage_is_a_503_not_a_500(shop, monkeypatch):
    def database_down(public_id):
        raise OperationalError("connection refused")

    forget_site_configs()
    monkeypatch.setattr(selectors, "load_site_config", database_down)
    body = {
        "site": shop.public_id,
        "events": [{"type": "pageview", "url": "https://shop.example/"}],
    }
    answer = post("/collect", body)
    assert answer.status_code == 503
    assert answer["Retry-After"] == "5"
    assert answer.json() == {"error": "database unavailable, retry later"}
