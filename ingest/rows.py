"""Rows as they travel through Kafka and land in ClickHouse: one struct per table.

The struct fields are exactly the table's columns, so the same bytes serve three purposes:
ingest encodes a row once (msgspec JSON), Kafka carries it, and the drain validates it with the
same struct and hands the bytes to ClickHouse as JSONEachRow without rebuilding them.
"""

from __future__ import annotations

import time
import uuid
from functools import lru_cache
from typing import Annotated

import msgspec

# DateTime64(3) text as ingest writes it ("2026-11-22 14:41:31.123"). Only the length is checked
# here (a regex would triple the drain's decoding cost); the sessionizer parses the value and
# ClickHouse checks it again, and either sends a malformed one to the dead-letter topic.
Timestamp = Annotated[str, msgspec.Meta(min_length=23, max_length=23)]


class PageRow(msgspec.Struct, omit_defaults=True):
    event_id: uuid.UUID
    site_id: str
    timestamp: Timestamp
    received_at: Timestamp
    event_type: str
    visitor_id: str
    session_id: str
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
    browser: str = ""
    browser_version: str = ""
    os: str = ""
    os_version: str = ""
    device_type: str = ""
    is_bot: int = 0
    visible_ms: int = 0
    scroll_depth: int = 0
    target: str = ""
    properties: dict[str, str] = {}
    # Set by the drain: where the row came from, stored with it (see ingest.storage).
    kafka_topic: str = ""
    kafka_partition: int = -1
    kafka_offset: int = -1


class AdRow(msgspec.Struct, omit_defaults=True):
    event_id: uuid.UUID
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
    device_type: str = ""
    is_bot: int = 0
    kafka_topic: str = ""
    kafka_partition: int = -1
    kafka_offset: int = -1


encoder = msgspec.json.Encoder()


def clickhouse_time(epoch_ms: int) -> str:
    """DateTime64(3) text as ClickHouse parses it: "2026-11-22 14:41:31.123" (UTC)."""
    seconds, millis = divmod(epoch_ms, 1000)
    return f"{_second_text(seconds)}.{millis:03d}"


@lru_cache(maxsize=4096)
def _second_text(epoch_seconds: int) -> str:
    # Formatting a datetime is the slowest step of building a row; events of a batch (and of
    # concurrent requests) share their second, so the text is made once per second.
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch_seconds))
