"""Event ids: time-ordered version-7 UUIDs made without a system call per event (page events),
and the ids of ad events, derived from what identifies them.

Page event ids are UUIDv7 (RFC 9562): the first 48 bits are the Unix time in milliseconds at
which the id was made, the rest random. The tracker makes them the same way. Deduplication
keeps its window of ids ordered by that time (events.tables), so a lookup of a batch of fresh
ids reads the recent end of the window instead of all of it (``id_millis`` gives a lookup its
lower bound). Ids of other versions (older clients, ad events) are just as valid: they sort
at the window's start, and a batch holding one is looked up across the whole window.

``uuid.uuid4()`` reads ``os.urandom`` for every id, a system call that costs from 10 to over
100 microseconds on a busy virtual machine, more than all the other work on an event. Event
ids only need to be unique (they are deduplication keys, not secrets), so the random bits come
from a per-process generator seeded from ``os.urandom``, reseeded in every forked child so that
two workers never share a sequence.
"""

from __future__ import annotations

import os
import random
import time
import uuid

_generator = random.Random(os.urandom(32))  # noqa: S311 (uniqueness, not secrecy)


def _reseed() -> None:
    _generator.seed(os.urandom(32))


os.register_at_fork(after_in_child=_reseed)

_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0b10 << 62
_MASK_62 = (1 << 62) - 1


def new_event_id(*, at_millis: int | None = None) -> str:
    """A UUIDv7 made at ``at_millis`` (Unix milliseconds; now by default), as canonical text
    (lower-case hex with dashes): what rows carry. Made as text directly, since a ``uuid.UUID``
    and its ``str()`` (both Python code) cost more than the rest of making the id."""
    millis = time.time_ns() // 1_000_000 if at_millis is None else at_millis
    random_bits = _generator.getrandbits(74)
    digits = "%032x" % (
        (millis & ((1 << 48) - 1)) << 80
        | _VERSION_7
        | (random_bits >> 62) << 64
        | _VARIANT_RFC
        | random_bits & _MASK_62
    )
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def id_millis(event_id: str) -> int | None:
    """The time (Unix milliseconds) in a version-7 id in canonical text, None for any other
    version: what ClickHouse's ``UUIDv7ToDateTime`` reads (it checks the version digit only,
    and gives 1970-01-01 for other versions)."""
    if event_id[14] != "7":
        return None
    return int(event_id[:8] + event_id[9:13], 16)


def ad_event_id(*, site_id: str, impression: str, kind: str) -> str:
    """The id of an ad event: one per (site, impression, event type), so a retried or replayed
    ad event is the same event and is stored and counted once."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"naboria:{site_id}:{impression}:{kind}"))
