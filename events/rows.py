"""Rows as they travel through Kafka and land in ClickHouse: one struct per table.

The struct fields are exactly the table's columns (events.tables; a test compares them), so the
same bytes serve three purposes: ingest encodes a row once (msgspec JSON), Kafka carries it,
and the writer stage (the drain, or the direct writer) hands the bytes to ClickHouse as
JSONEachRow without rebuilding them. The writer decodes only what it checks and deduplicates
by (``RowEssentials``); ClickHouse parses and type-checks the rest, and a row it refuses goes to
the dead-letter topic.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Annotated

import msgspec

# DateTime64(3) text as ingest writes it ("2026-11-22 14:41:31.123"). Only the length is checked
# here (a regex would triple the drain's decoding cost); ClickHouse parses the value, and a
# malformed one goes to the dead-letter topic.
Timestamp = Annotated[str, msgspec.Meta(min_length=23, max_length=23)]
# A UUID in its 36-character text form. Decoding into uuid.UUID would cost the drain more than
# the rest of a row together (~4 µs); ClickHouse parses the UUID column and refuses a bad one.
EventId = Annotated[str, msgspec.Meta(min_length=36, max_length=36)]


class PageRow(msgspec.Struct, omit_defaults=True):
    event_id: EventId
    site_id: str
    timestamp: Timestamp
    received_at: Timestamp
    event_type: str
    visitor_id: str
    consent_state: str
    pathname: str
    url: str
    retention_days: int
    event_name: str = ""
    app_id: str = ""
    hostname: str = ""
    referrer: str = ""
    referrer_source: str = ""
    referrer_medium: str = ""
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    utm_term: str = ""
    utm_content: str = ""
    country: str = ""
    region: str = ""
    city: str = ""
    browser: str = ""
    browser_version: str = ""
    os: str = ""
    os_version: str = ""
    device_type: str = ""
    is_bot: int = 0
    bot_reason: str = ""
    visible_ms: int = 0
    scroll_depth: int = 0
    target: str = ""
    properties: dict[str, str] = {}


class AdRow(msgspec.Struct, omit_defaults=True):
    event_id: EventId
    impression_id: str
    site_id: str
    timestamp: Timestamp
    received_at: Timestamp
    event_type: str
    visitor_id: str
    consent_state: str
    campaign_id: int
    ad_id: int
    retention_days: int
    placement_id: int = 0
    creative_type: str = ""
    app_id: str = ""
    pathname: str = ""
    country: str = ""
    region: str = ""
    city: str = ""
    device_type: str = ""
    is_bot: int = 0
    bot_reason: str = ""
    error_code: int = 0


class RowEssentials(msgspec.Struct):
    """What the writer stage checks of either row before storing it: its deduplication key
    (site, event id), and the fields that ClickHouse would otherwise fill with a harmful default
    (a zero retention expires the row at once). Decoding only these costs a third of decoding
    the whole row."""

    event_id: EventId
    site_id: str
    visitor_id: str
    timestamp: Timestamp
    retention_days: Annotated[int, msgspec.Meta(ge=1)]


encoder = msgspec.json.Encoder()
essentials_decoder = msgspec.json.Decoder(RowEssentials)


def clickhouse_time(epoch_ms: int) -> str:
    """DateTime64(3) text as ClickHouse parses it: "2026-11-22 14:41:31.123" (UTC)."""
    seconds, millis = divmod(epoch_ms, 1000)
    return f"{_second_text(seconds)}.{millis:03d}"


@lru_cache(maxsize=4096)
def _second_text(epoch_seconds: int) -> str:
    # Formatting a datetime is the slowest step of building a row; events of a batch (and of
    # concurrent requests) share their second, so the text is made once per second.
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch_seconds))
