"""Property-based tests: whatever a client sends, the tracking endpoints answer below 500."""

from __future__ import annotations

import json
from typing import cast

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.schemas import UPDATE_EVENT_TYPES
from ingest.selectors import forget_site_configs
from ingest.sinks import reset_sink
from sites.models import Site
from tests.factories import SiteFactory
from tests.tracking_client import TrackingClient

pytestmark = [
    pytest.mark.clickhouse,
    pytest.mark.django_db,
    pytest.mark.usefixtures("clickhouse_schema"),
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
event_like = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["pageview", "event", "engagement", "outbound", "download", "x", *UPDATE_EVENT_TYPES]
        )
    },
    optional={
        # update events' fields (versions well-formed often enough to reach the others)
        "current_version": st.just("1.0.0") | json_values,
        "target_version": st.just("1.1.0") | json_values,
        "progress": st.integers() | json_values,
        "install_duration_ms": st.integers(),
        "download_speed_mbps": st.floats(allow_nan=False) | json_values,
        "error_code": json_values,
        "failure_stage": st.sampled_from(["download", "reboot"]),
        "battery_level": st.integers(),
        "url": st.text(max_size=80) | st.just("https://shop.example/a"),
        "ts": st.integers(min_value=-(2**70), max_value=2**70),
        "props": st.dictionaries(st.text(max_size=8), json_values, max_size=40),
        "visible_ms": st.integers() | st.text(max_size=5),
        "scroll_depth": st.integers(),
        "id": st.text(max_size=40),
        "referrer": json_values,
    },
)
HYPOTHESIS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(autouse=True)
def direct_path():
    forget_site_configs()
    with override_settings(KAFKA_BOOTSTRAP_SERVERS=""):
        reset_sink()
        yield
        reset_sink()


@pytest.fixture
def site_id(db):
    site = cast(Site, SiteFactory(allowed_domains=["shop.example"]))
    return site.public_id


@HYPOTHESIS
@given(body=st.binary(max_size=300))
def test_arbitrary_bytes_never_give_a_500(site_id, body):
    for path in ("/collect", "/ad-event"):
        response = TrackingClient().post(path, data=body, content_type="text/plain")
        assert 400 <= response.status_code < 500
        assert response.json()["error"]


@HYPOTHESIS
@given(
    events=st.lists(event_like | json_values, max_size=6),
    extra=st.dictionaries(
        st.sampled_from(["bid", "token", "consent", "app", "sent_at"]), json_values
    ),
    app=st.sampled_from([{}, {"app": "com.example.shop"}]),  # update events need one
)
def test_arbitrary_batches_never_give_a_500(site_id, events, extra, app):
    body = {"site": site_id, "events": events, **app, **extra}
    response = TrackingClient().post(
        "/collect", data=json.dumps(body), content_type="application/json"
    )
    assert response.status_code in {202, 400, 403}, response.content


@HYPOTHESIS
@given(params=st.dictionaries(st.sampled_from(["site", "url", "ref", "bid"]), st.text(max_size=40)))
def test_arbitrary_pixel_and_init_queries_never_give_a_500(site_id, params):
    for path in ("/p.gif", "/init"):
        response = TrackingClient().get(path, params)
        assert response.status_code < 500, response.content
