"""ClickHouse access for the whole product; the only module that imports ``clickhouse_connect``.

One client API serves both profiles: ``CLICKHOUSE_URL=chdb:///path`` runs the ClickHouse engine
in process through clickhouse-connect's chdb backend, ``http(s)://host:8123`` talks to a server.

Entry points:
    get_client()       the client bound to ``settings.CLICKHOUSE_DATABASE`` (built on first use,
                       never at import time): one per process for a server, one per thread for
                       the embedded engine
    new_client()       a client of its own, for a caller that changes session state (USE, SET):
                       dbt's connections in the embedded profile (analytics.ml.dbt_chdb)
    ensure_database()  creates the database if it is missing (used by the migration runner)
    ping()             raises ``ClickHouseUnavailable`` if ClickHouse does not answer
    reset()            forgets the cached client (tests that switch settings)

An embedded chdb data folder can be opened by one process only, so in the embedded profile
everything that touches ClickHouse runs inside the web process.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from django.conf import settings

_lock = threading.Lock()
_client: Any = None
# The embedded engine's clients, one per thread: clickhouse-connect's chdb backend runs one call
# at a time per client (a lock around its engine handle), so a client shared by the drain's
# consumer and writer threads would make a lookup wait for the insert beside it. Handles on one
# path share the engine and its data. Bumping the generation (reset) makes every thread build
# a new one.
_thread_clients = threading.local()
_generation = 0


class ClickHouseUnavailable(Exception):
    """ClickHouse could not be reached or refused the connection."""


def _describe(error: Exception) -> str:
    # clickhouse-connect wraps socket errors in long retry messages; the errno text is the news.
    text = str(error)
    cause = re.search(r"\[Errno -?\d+\] ([^\"')]+)", text)
    return cause.group(1).strip() if cause else text.splitlines()[0][:200]


def _build(*, database: str | None, session_settings: dict[str, Any] | None = None) -> Any:
    import clickhouse_connect
    from clickhouse_connect.driver.exceptions import ClickHouseError

    options: dict[str, Any] = {"dsn": settings.CLICKHOUSE_URL}
    if database:
        options["database"] = database
    if session_settings:
        options["settings"] = session_settings
    if not settings.CLICKHOUSE_URL.startswith("chdb:"):
        # A shared client serves many threads; HTTP sessions would serialise them.
        options.update(
            autogenerate_session_id=False,
            connect_timeout=5,
            send_receive_timeout=60,
        )
    try:
        return clickhouse_connect.get_client(**options)
    except (ClickHouseError, OSError) as error:
        raise ClickHouseUnavailable(_describe(error)) from error


def get_client() -> Any:
    global _client
    if settings.CLICKHOUSE_URL.startswith("chdb:"):
        if getattr(_thread_clients, "generation", None) != _generation:
            _thread_clients.client = _build(database=settings.CLICKHOUSE_DATABASE)
            _thread_clients.generation = _generation
        return _thread_clients.client
    if _client is None:
        with _lock:
            if _client is None:
                _client = _build(database=settings.CLICKHOUSE_DATABASE)
    return _client


def new_client(*, database: str | None, session_settings: dict[str, Any] | None = None) -> Any:
    # In the embedded profile this opens another handle on the same chdb engine: clients on one
    # path share its data, each with its own USE and SET state.
    return _build(database=database, session_settings=session_settings)


def ensure_database() -> None:
    server = _build(database=None)
    server.command(f"CREATE DATABASE IF NOT EXISTS {settings.CLICKHOUSE_DATABASE}")


def ping() -> None:
    from clickhouse_connect.driver.exceptions import ClickHouseError

    try:
        get_client().command("SELECT 1")
    except (ClickHouseError, OSError) as error:
        raise ClickHouseUnavailable(_describe(error)) from error


def reset() -> None:
    global _client, _generation
    with _lock:
        _client = None
        _generation += 1
