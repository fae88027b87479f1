"""Size-or-age batches, counted in rows."""

from __future__ import annotations

import time

from ingest.batching import Batch


def test_a_batch_is_due_by_rows_not_items():
    batch: Batch[str] = Batch(max_size=10, max_seconds=60)
    batch.add("message of 4 rows", rows=4)
    assert not batch.is_due()
    batch.add("message of 6 rows", rows=6)
    assert batch.is_due()
    assert len(batch) == 10
    assert batch.take() == ["message of 4 rows", "message of 6 rows"]
    assert len(batch) == 0
    assert not batch.is_due()


def test_a_batch_is_due_when_its_first_item_is_old_enough():
    batch: Batch[int] = Batch(max_size=1000, max_seconds=0.05)
    batch.add(1)
    assert not batch.is_due()
    time.sleep(0.06)
    assert batch.is_due()


def test_put_back_keeps_order_and_counts():
    batch: Batch[int] = Batch(max_size=5, max_seconds=60)
    batch.add(3)
    batch.put_back([1, 2], rows=2)
    assert len(batch) == 3
    assert batch.take() == [1, 2, 3]
