"""Event ids: valid UUIDv7 carrying the time they were made, unique, different in a forked
child; and the time read back from an id."""

from __future__ import annotations

import os
import time
import uuid

from events.ids import id_millis, new_event_id


def test_ids_are_unique_version_7_uuids_that_carry_their_time():
    before = time.time_ns() // 1_000_000
    ids = [new_event_id() for _ in range(50_000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == 50_000
    # Canonical text: what uuid.UUID reads and writes back unchanged.
    assert all(str(uuid.UUID(event_id)) == event_id for event_id in ids)
    assert {uuid.UUID(event_id).version for event_id in ids} == {7}
    assert {uuid.UUID(event_id).variant for event_id in ids} == {uuid.RFC_4122}
    times = [id_millis(event_id) or 0 for event_id in ids]
    assert all(before <= millis <= after for millis in times)
    assert times == sorted(times)
    # Their text sorts as they were made (what a lookup's bound relies on, events.dedup).
    pairs = zip(ids, ids[1:], times, times[1:], strict=False)
    assert all(
        earlier < later for earlier, later, earlier_ms, later_ms in pairs if earlier_ms < later_ms
    )


def test_an_id_made_at_a_given_time_carries_it_and_other_versions_carry_none():
    assert id_millis(new_event_id(at_millis=1_796_286_328_230)) == 1_796_286_328_230
    assert id_millis(new_event_id(at_millis=0)) == 0
    assert id_millis(str(uuid.uuid4())) is None
    assert id_millis(str(uuid.uuid5(uuid.NAMESPACE_URL, "x"))) is None


def test_a_forked_worker_does_not_repeat_the_parents_sequence():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write, new_event_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child_id = os.read(read, 36).decode()
    assert child_id != new_event_id()
