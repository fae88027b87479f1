"""Session ids with a 30-minute inactivity gap, assigned where rows are written.

The writer stage (a drain consumer, or the direct writer) is the one place that sees a site's
events in order: Kafka is keyed by site, so one partition holds all of a site's events. It
keeps the last activity of recent visitors in memory (bounded, least recently seen dropped)
and, when it takes over a partition, learns the open sessions from ClickHouse (``remember``).

A session id is a hash of (site, visitor, start time), so processing the same events twice
yields the same ids.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache

from events.rows import RowEssentials, essentials_decoder, with_fields

SESSION_GAP_MS = 30 * 60 * 1000


def epoch_ms(clickhouse_time: str) -> int:
    """Milliseconds since the epoch of "2026-11-22 14:41:31.123"; ValueError if malformed."""
    if clickhouse_time[19] != ".":
        raise ValueError(f"not a DateTime64(3) text: {clickhouse_time!r}")
    return _epoch_seconds(clickhouse_time[:19]) * 1000 + int(clickhouse_time[20:])


@lru_cache(maxsize=4096)
def _epoch_seconds(text: str) -> int:
    # Rows of a batch share their seconds; parsing each distinct second once is what keeps
    # sessionizing cheap.
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def session_id_for(site_id: str, visitor_id: str, start_ms: int) -> str:
    material = f"{site_id}:{visitor_id}:{start_ms}".encode()
    return hashlib.blake2b(material, digest_size=8).hexdigest()


class Sessionizer:
    def __init__(self, *, max_visitors: int = 500_000) -> None:
        self.max_visitors = max_visitors
        self._open: OrderedDict[tuple[str, str], tuple[str, int]] = OrderedDict()

    def remember(self, sessions: Iterable[tuple[str, str, str, int]]) -> None:
        """Seed open sessions: (site_id, visitor_id, session_id, last activity in ms)."""
        for site_id, visitor_id, session_id, last_ms in sessions:
            self._touch((site_id, visitor_id), session_id, last_ms)

    def _touch(self, key: tuple[str, str], session_id: str, last_ms: int) -> None:
        self._open[key] = (session_id, last_ms)
        self._open.move_to_end(key)
        if len(self._open) > self.max_visitors:
            self._open.popitem(last=False)

    def assign_encoded(self, encoded_rows: Sequence[bytes]) -> list[bytes]:
        """The page rows with their session ids, for rows already checked (the direct path)."""
        return [
            with_fields(row, self.session_field(essentials_decoder.decode(row)))
            for row in encoded_rows
        ]

    def session_field(self, row: RowEssentials) -> bytes:
        """The row's session id as a field for ``with_fields``, in order of arrival;
        ValueError if its timestamp is malformed."""
        key = (row.site_id, row.visitor_id)
        moment = epoch_ms(row.timestamp)
        current = self._open.get(key)
        if current is not None and moment - current[1] <= SESSION_GAP_MS:
            session_id, last_ms = current[0], max(current[1], moment)
        else:
            session_id, last_ms = session_id_for(row.site_id, row.visitor_id, moment), moment
        self._touch(key, session_id, last_ms)
        return b'"session_id":"%s",' % session_id.encode()
