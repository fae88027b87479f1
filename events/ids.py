"""Event ids: random version-4 UUIDs made without a system call per event (page events), and
the ids of ad events, derived from what identifies them.

``uuid.uuid4()`` reads ``os.urandom`` for every id, a system call that costs from 10 to over
100 microseconds on a busy virtual machine, more than all the other work on an event. Event
ids only need to be unique (they are deduplication keys, not secrets), so they come from a
per-process generator seeded from ``os.urandom``, reseeded in every forked child so that two
workers never share a sequence.
"""

from __future__ import annotations

import os
import random
import uuid

_generator = random.Random(os.urandom(32))  # noqa: S311 (uniqueness, not secrecy)


def _reseed() -> None:
    _generator.seed(os.urandom(32))


os.register_at_fork(after_in_child=_reseed)


def new_event_id() -> uuid.UUID:
    return uuid.UUID(int=_generator.getrandbits(128), version=4)


def ad_event_id(*, site_id: str, impression: str, kind: str) -> str:
    """The id of an ad event: one per (site, impression, event type), so a retried or replayed
    ad event is the same event and is stored and counted once."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"naboria:{site_id}:{impression}:{kind}"))
