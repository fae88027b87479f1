"""Small helpers shared by integration and browser tests: waiting for what lands
asynchronously (ClickHouse inserts, streamed events) and reading ad events back."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from naboria import clickhouse


def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """``check()``'s first truthy result within ``timeout`` seconds, else its last result."""
    deadline = time.monotonic() + timeout
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return result


def ad_events(impression: str) -> list[str]:
    """The event types stored for an impression, in time order."""
    return [
        kind
        for (kind,) in clickhouse.get_client()
        .query(
            "SELECT event_type FROM ad_events WHERE impression_id = {i:String} ORDER BY timestamp",
            parameters={"i": impression},
        )
        .result_rows
    ]
