"""Dependency checks behind ``GET /health`` and the start-up checks of every process role.

Each configured backend gets one check that does a real round trip (a query, a metadata
request, a ping, a channel-layer send/receive) and reports its status and latency.

Entry points:
    check_dependencies()  -> list[DependencyStatus], one per backend, in a fixed order
    assert_dependencies_reachable()  raises ConfigurationError naming the variable of the first
                                     backend that failed (used when a process starts)
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection

from naboria import clickhouse, kafka_client, mongo
from naboria.config import ConfigurationError, redact_url
from naboria.metrics import DEPENDENCY_LATENCY, DEPENDENCY_UP


@dataclass(frozen=True)
class DependencyStatus:
    name: str
    variable: str
    backend: str
    ok: bool
    latency_ms: float
    error: str = ""

    def as_dict(self) -> dict[str, object]:
        report: dict[str, object] = {
            "status": "ok" if self.ok else "error",
            "backend": self.backend,
            "latency_ms": round(self.latency_ms, 2),
        }
        if self.error:
            report["error"] = self.error
        return report


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_kafka() -> None:
    if kafka_client.is_enabled():
        kafka_client.ping(timeout=settings.HEALTH_CHECK_TIMEOUT_SECONDS)


def _check_channel_layer() -> None:
    async def round_trip() -> None:
        layer = get_channel_layer()
        if layer is None:
            raise RuntimeError("CHANNEL_LAYERS has no default layer")
        channel = await layer.new_channel("health.")
        token = uuid.uuid4().hex
        await layer.send(channel, {"type": "health.ping", "token": token})
        message = await asyncio.wait_for(
            layer.receive(channel), timeout=settings.HEALTH_CHECK_TIMEOUT_SECONDS
        )
        if message.get("token") != token:
            raise RuntimeError("channel layer returned a different message")

    async_to_sync(round_trip)()


def _backends() -> list[tuple[str, str, str, Callable[[], None]]]:
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        database_backend = f"sqlite ({database['NAME']})"
    else:
        database_backend = redact_url(settings.DATABASE_URL)
    clickhouse_backend = (
        f"chdb (embedded, {settings.CLICKHOUSE_URL.removeprefix('chdb://')})"
        if settings.CLICKHOUSE_URL.startswith("chdb:")
        else redact_url(settings.CLICKHOUSE_URL)
    )
    return [
        ("database", "DATABASE_URL", database_backend, _check_database),
        ("clickhouse", "CLICKHOUSE_URL", clickhouse_backend, clickhouse.ping),
        (
            "kafka",
            "KAFKA_BOOTSTRAP_SERVERS",
            settings.KAFKA_BOOTSTRAP_SERVERS
            or "direct (no Kafka: events go straight to ClickHouse)",
            _check_kafka,
        ),
        (
            "mongodb",
            "MONGODB_URL",
            redact_url(settings.MONGODB_URL) if settings.MONGODB_URL else "in-process (mongomock)",
            mongo.ping,
        ),
        (
            "channel_layer",
            "REDIS_URL",
            redact_url(settings.REDIS_URL) if settings.REDIS_URL else "in-memory",
            _check_channel_layer,
        ),
    ]


# The checks of the backends reached over a network socket run here, so that a backend that
# accepts connections and never answers (a paused process, a full accept queue) costs a
# check HEALTH_CHECK_TIMEOUT_SECONDS, not its client's own read timeout (60 s for ClickHouse,
# none for MongoDB). A check still waiting keeps its thread until its client gives up.
_checks = ThreadPoolExecutor(max_workers=8, thread_name_prefix="health-check")


def _run_check(name: str, check: Callable[[], None]) -> None:
    if name == "database":
        check()  # Django's connection belongs to the calling thread
        return
    try:
        _checks.submit(check).result(timeout=settings.HEALTH_CHECK_TIMEOUT_SECONDS)
    except FutureTimeout:
        raise TimeoutError(
            f"no answer within {settings.HEALTH_CHECK_TIMEOUT_SECONDS:g} s"
        ) from None


def check_dependencies() -> list[DependencyStatus]:
    results = []
    for name, variable, backend, check in _backends():
        started = time.perf_counter()
        error = ""
        try:
            _run_check(name, check)
        except Exception as exc:  # a health check reports any failure instead of raising it
            error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        elapsed = time.perf_counter() - started
        DEPENDENCY_UP.labels(name).set(0 if error else 1)
        DEPENDENCY_LATENCY.labels(name).set(elapsed)
        results.append(
            DependencyStatus(
                name=name,
                variable=variable,
                backend=backend,
                ok=not error,
                latency_ms=elapsed * 1000,
                error=error,
            )
        )
    return results


def assert_dependencies_reachable() -> None:
    for status in check_dependencies():
        if not status.ok:
            raise ConfigurationError(
                status.variable, f"{status.backend} is unreachable ({status.error})"
            )
