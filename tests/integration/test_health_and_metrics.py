"""GET /health reports every configured backend; GET /metrics speaks Prometheus."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from naboria import clickhouse, kafka_client
from scripts.test_services import free_port


@pytest.mark.parametrize("_", [None], ids=["all-services"])
@pytest.mark.usefixtures("clickhouse_schema")
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.kafka
@pytest.mark.clickhouse
@pytest.mark.mongodb
@pytest.mark.django_db
def test_health_is_200_with_every_real_backend_ok(_):
    response = Client().get("/health")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["failing"] == []
    assert set(body["dependencies"]) == {
        "database",
        "clickhouse",
        "kafka",
        "mongodb",
        "channel_layer",
    }
    for name, report in body["dependencies"].items():
        assert report["status"] == "ok", name
        assert report["latency_ms"] >= 0
    assert body["dependencies"]["kafka"]["backend"].startswith("127.0.0.1:")
    assert body["dependencies"]["channel_layer"]["backend"].startswith("redis://")


@pytest.fixture
def unreachable_clickhouse():
    with override_settings(CLICKHOUSE_URL=f"http://127.0.0.1:{free_port()}"):
        clickhouse.reset()
        yield
    clickhouse.reset()


@pytest.mark.django_db
def test_health_is_503_naming_an_unreachable_clickhouse(unreachable_clickhouse):
    response = Client().get("/health")
    body = response.json()
    assert response.status_code == 503
    assert body["failing"] == ["clickhouse"]
    assert body["dependencies"]["clickhouse"]["status"] == "error"
    assert body["dependencies"]["clickhouse"]["error"]


@pytest.mark.django_db
def test_health_reports_an_unreachable_kafka_broker():
    with override_settings(KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}"):
        response = Client().get("/health")
    assert response.status_code == 503
    assert "kafka" in response.json()["failing"]
    kafka_client.reset()


@pytest.mark.django_db
@pytest.mark.usefixtures("clickhouse_schema")
def test_health_hides_passwords_in_backend_urls():
    with override_settings(MONGODB_URL="mongodb://app:s3cret@127.0.0.1:1/naboria"):
        body = Client().get("/health").json()
    assert "s3cret" not in str(body)
    assert body["dependencies"]["mongodb"]["backend"] == "mongodb://app:***@127.0.0.1:1/naboria"


@pytest.mark.django_db
def test_metrics_exposes_request_counters_by_route():
    client = Client()
    client.get("/api/v1/sites/")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert 'naboria_http_requests_total{method="GET",route="api/v1/sites/",status="401"}' in text
    assert "naboria_http_request_duration_seconds_bucket" in text


@pytest.mark.django_db
@override_settings(METRICS_TOKEN="scrape-me")
def test_metrics_token_is_required_when_configured():
    client = Client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me").status_code == 200
