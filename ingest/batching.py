"""Size-or-age batching, shared by the drain and the direct path: a batch is due when it holds
``max_size`` items or its first item has waited ``max_seconds``."""

from __future__ import annotations

import time
from typing import Generic, TypeVar

Item = TypeVar("Item")


class Batch(Generic[Item]):
    def __init__(self, *, max_size: int, max_seconds: float) -> None:
        self.max_size = max_size
        self.max_seconds = max_seconds
        self.items: list[Item] = []
        self.started_at = 0.0

    def __len__(self) -> int:
        return len(self.items)

    def add(self, item: Item) -> None:
        if not self.items:
            self.started_at = time.monotonic()
        self.items.append(item)

    def is_due(self) -> bool:
        if not self.items:
            return False
        return len(self.items) >= self.max_size or self.seconds_left() <= 0

    def seconds_left(self) -> float:
        if not self.items:
            return self.max_seconds
        return self.max_seconds - (time.monotonic() - self.started_at)

    def take(self) -> list[Item]:
        items, self.items = self.items, []
        return items
