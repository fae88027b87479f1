"""Jobs that must not run twice at once, across every process of an installation.

Entry point:
    exclusive(name, hold=..., wait=...)   a context manager that holds the lock ``name``

With REDIS_URL (production) the lock is a Redis lock, shared by every process and released by
itself ``hold`` seconds after its holder died; without it (embedded profile) a single process
owns the embedded stores, so a lock per process is enough.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import cache

import redis
from django.conf import settings


class LockBusy(RuntimeError):
    """Another process held the lock for longer than the caller would wait."""


@contextmanager
def exclusive(name: str, *, hold: float, wait: float) -> Iterator[None]:
    """Run the body while no other holder of ``name`` does: wait up to ``wait`` seconds for it
    (LockBusy after that); ``hold`` bounds how long a holder that died keeps others out."""
    if settings.REDIS_URL:
        lock = _redis().lock(f"naboria:lock:{name}", timeout=hold, blocking_timeout=wait)
        if not lock.acquire():
            raise LockBusy(f"{name} is still held by another process after {wait:.0f} s")
        try:
            yield
        finally:
            # Held past ``hold``, the lock expired: then there is nothing left to release.
            with suppress(redis.exceptions.LockError):
                lock.release()
        return
    local = _local_lock(name)
    if not local.acquire(timeout=wait):
        raise LockBusy(f"{name} is still held after {wait:.0f} s")
    try:
        yield
    finally:
        local.release()


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


_local_locks: dict[str, threading.Lock] = {}
_local_locks_guard = threading.Lock()


def _local_lock(name: str) -> threading.Lock:
    with _local_locks_guard:
        return _local_locks.setdefault(name, threading.Lock())
