"""Event ids: valid UUIDv4, unique, and different in a forked child."""

from __future__ import annotations

import os
import uuid

from events.ids import new_event_id


def test_ids_are_unique_version_4_uuids():
    ids = {new_event_id() for _ in range(50_000)}
    assert len(ids) == 50_000
    assert {event_id.version for event_id in ids} == {4}
    assert all(event_id.variant == uuid.RFC_4122 for event_id in list(ids)[:100])


def test_a_forked_worker_does_not_repeat_the_parents_sequence():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write, new_event_id().bytes)
        os._exit(0)
    os.waitpid(pid, 0)
    child_id = uuid.UUID(bytes=os.read(read, 16))
    assert child_id != new_event_id()
