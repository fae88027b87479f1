"""The ASGI roles do not pile up PostgreSQL connections. Django keeps a connection per thread,
and under ASGI each request's synchronous code runs in a thread of its own: with persistent
connections (CONN_MAX_AGE > 0) every request left one open until the garbage collector found
it, and a fuzzing run of 800 requests exhausted the server's max_connections."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from django.conf import settings
from django.db import connection

from sites.services import api_token_create
from tests.factories import OrganizationFactory, SiteFactory

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="counts PostgreSQL's connections"
)


def open_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        found: int = cursor.fetchone()[0]
    return found


def test_django_requests_over_asgi_leave_no_connection_open(server: str) -> None:
    assert settings.DATABASES["default"]["CONN_MAX_AGE"] == 0
    organization: Any = OrganizationFactory()
    site: Any = SiteFactory(organization=organization)
    _, token = api_token_create(organization=organization, name="connections")
    headers = {"Authorization": f"Bearer {token}"}
    before = open_connections()
    with requests.Session() as session:
        for _ in range(120):
            answer = session.get(f"{server}/api/v1/sites/{site.public_id}/", headers=headers)
            assert answer.status_code == 200
    # Each request closed its connection as it ended; none waits for a collection.
    assert open_connections() - before <= 2
