"""Size-or-age batching, shared by the drain and the direct path: a batch is due when it holds
``max_size`` rows or its first item has waited ``max_seconds``. An item may carry several rows
(a Kafka message holds a whole accepted batch), so items are added with their row count."""

from __future__ import annotations

import time
from typing import Generic, TypeVar

Item = TypeVar("Item")


class Batch(Generic[Item]):
    def __init__(self, *, max_size: int, max_seconds: float) -> None:
        self.max_size = max_size
        self.max_seconds = max_seconds
        self.items: list[Item] = []
        self.rows = 0
        self.started_at = 0.0

    def __len__(self) -> int:
        return self.rows

    def add(self, item: Item, rows: int = 1) -> None:
        if not self.items:
            self.started_at = time.monotonic()
        self.items.append(item)
        self.rows += rows

    def is_due(self) -> bool:
        if not self.items:
            return False
        return self.rows >= self.max_size or self.seconds_left() <= 0

    def seconds_left(self) -> float:
        if not self.items:
            return self.max_seconds
        return self.max_seconds - (time.monotonic() - self.started_at)

    def put_back(self, items: list[Item], rows: int) -> None:
        """Return taken items to the front (their write failed), keeping their order."""
        if not self.items:
            self.started_at = time.monotonic()
        self.items[:0] = items
        self.rows += rows

    def take(self) -> list[Item]:
        items, self.items, self.rows = self.items, [], 0
        return items
