"""Redis for the keys apps keep themselves (recommendation signals and popular pages): one
asyncio client per event loop for the endpoints, one thread-safe client for jobs.

``REDIS_URL`` set: the Redis server, shared by every process. Unset (the embedded profile): an
in-process Redis (fakeredis) with the same commands, expiry included, shared by this process's
clients only, which is what the embedded profile needs since everything runs in the web
process. Clients are built on first use, never at import time.

Entry points: async_client(), sync_client(), RedisError, reset() (tests that switch settings).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any

import redis
import redis.asyncio
from django.conf import settings

RedisError = redis.exceptions.RedisError
# Bounded: a burst of requests waits for a connection instead of each opening one.
MAX_CONNECTIONS = 32

_lock = threading.RLock()  # sync_client builds the embedded server while holding it
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
    weakref.WeakKeyDictionary()
)
_sync_client: Any = None
_embedded_server: Any = None


def _embedded() -> Any:
    global _embedded_server
    import fakeredis

    with _lock:
        if _embedded_server is None:
            _embedded_server = fakeredis.FakeServer()
        return _embedded_server


def async_client() -> Any:
    """The asyncio client of the running event loop (an asyncio client belongs to the loop it
    was made in)."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        if settings.REDIS_URL:
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                settings.REDIS_URL, max_connections=MAX_CONNECTIONS, timeout=5
            )
            client = redis.asyncio.Redis(connection_pool=pool)
        else:
            import fakeredis

            client = fakeredis.FakeAsyncRedis(server=_embedded())
        _async_clients[loop] = client
    return client


def sync_client() -> Any:
    """A client for jobs and other synchronous code (thread-safe: it holds a pool)."""
    global _sync_client
    with _lock:
        if _sync_client is None:
            if settings.REDIS_URL:
                _sync_client = redis.Redis.from_url(settings.REDIS_URL)
            else:
                import fakeredis

                _sync_client = fakeredis.FakeRedis(server=_embedded())
        return _sync_client


def reset() -> None:
    """Forget every client (and the embedded data): the next call builds them again."""
    global _sync_client, _embedded_server
    with _lock:
        _async_clients.clear()
        _sync_client = None
        _embedded_server = None
