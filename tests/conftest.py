"""Shared fixtures and the service markers.

A test marked ``@pytest.mark.kafka`` (postgres, redis, clickhouse, mongodb, browser) runs only
when that service is configured; otherwise it is skipped locally and *fails* in CI, where
``make test`` always provides every service. The terminal summary counts what ran per service.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from scripts.test_services import free_port
from tests.factories import OrganizationFactory, SiteFactory, UserFactory

SERVICE_MARKERS = ("postgres", "redis", "kafka", "clickhouse", "mongodb", "browser")
CHROMIUM = Path("/usr/bin/chromium")


def _service_available(name: str) -> bool:
    return {
        "postgres": settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
        "redis": bool(settings.REDIS_URL),
        "kafka": bool(settings.KAFKA_BOOTSTRAP_SERVERS),
        "clickhouse": bool(settings.CLICKHOUSE_URL),
        "mongodb": bool(settings.MONGODB_URL),
        "browser": CHROMIUM.exists(),
    }[name]


def pytest_runtest_setup(item: pytest.Item) -> None:
    for name in SERVICE_MARKERS:
        if item.get_closest_marker(name) and not _service_available(name):
            message = f"{name} is not configured (run the suite with `make test`)"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(f"{message}; in CI every service is required", pytrace=False)
            pytest.skip(message)


_passed_by_service: Counter[str] = Counter()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.passed:
        for name in SERVICE_MARKERS:
            if name in report.keywords:
                _passed_by_service[name] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    counts = ", ".join(f"{name} {_passed_by_service[name]}" for name in SERVICE_MARKERS)
    terminalreporter.write_line(f"integration tests passed per service: {counts}")


@pytest.fixture(scope="session")
def clickhouse_schema(django_db_blocker: object) -> None:
    """The ClickHouse test database with every migration applied (once per session)."""
    from analytics import clickhouse_migrations

    clickhouse_migrations.apply_pending()


@pytest.fixture
def direct_path() -> Iterator[None]:
    """Events go straight to ClickHouse (no Kafka), flushed every 50 ms."""
    from django.test import override_settings

    from ingest.selectors import forget_site_configs
    from ingest.sinks import reset_sink

    forget_site_configs()
    with override_settings(KAFKA_BOOTSTRAP_SERVERS="", INGEST_BATCH_SECONDS=0.05):
        reset_sink()
        yield
        reset_sink()


@pytest.fixture
def organization(db: None) -> object:
    return OrganizationFactory()


@pytest.fixture
def site(organization: object) -> object:
    return SiteFactory(organization=organization)


@pytest.fixture
def user(db: None) -> object:
    return UserFactory()


@pytest.fixture
def site_with_banner(site: Any) -> Any:
    """A site that uses Naboria's consent banner: the server checks the consent pages claim
    against the recorded decisions."""
    from consent.selectors import forget_all_recorded_purposes
    from consent.services import consent_banner_ensure
    from ingest.selectors import forget_site_configs

    site.consent_banner_enabled = True
    site.save()
    consent_banner_ensure(site=site)
    forget_site_configs()
    forget_all_recorded_purposes()
    return site


@pytest.fixture
def server(transactional_db: None) -> Iterator[str]:
    """The whole ASGI application on a free port, sharing this process's ClickHouse."""
    import uvicorn

    from naboria.asgi import application

    port = free_port()
    config = uvicorn.Config(
        application,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=1,  # open ad streams would hold the shutdown otherwise
    )
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not instance.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=10)
    _close_server_connections()


def _close_server_connections() -> None:
    """The server answered from threads of its own, whose database connections outlive it;
    the test database cannot be flushed or dropped while they are open."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


@pytest.fixture
def recs_redis() -> Iterator[None]:
    """No recommendation keys in Redis (or the embedded store) before the test, and no popular
    list kept in this process before or after it."""
    from naboria import redis_client
    from recs import keys
    from recs.selectors import forget_popular

    client = redis_client.sync_client()
    for key in client.scan_iter(f"{keys.PREFIX}*"):
        client.delete(key)
    forget_popular()
    yield
    forget_popular()


@pytest.fixture
def ads_client() -> Any:
    """The ad server's request/response endpoints, called in process by a desktop browser (a
    request without a User-Agent is a bot's, and bots never count)."""
    from ads.endpoints import ENDPOINTS as AD_ENDPOINTS
    from ingest.asgi import lean_application
    from tests.tracking_client import TrackingClient
    from tests.unit.test_enrichment import WINDOWS_CHROME

    return TrackingClient(lean_application(AD_ENDPOINTS), HTTP_USER_AGENT=WINDOWS_CHROME)


@pytest.fixture
def empty_delivery() -> Iterator[None]:
    """No published ads before or after the test (MongoDB and this process's snapshot)."""
    from ads import snapshot
    from ads.counters import reset_counters
    from ads.documents import DeliveryAdDocument, DeliveryPlacementDocument
    from naboria import mongo

    mongo.connect()
    DeliveryAdDocument.objects.delete()
    DeliveryPlacementDocument.objects.delete()
    reset_counters()
    snapshot.load()
    yield
    DeliveryAdDocument.objects.delete()
    DeliveryPlacementDocument.objects.delete()
    snapshot.load()
