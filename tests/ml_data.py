"""Mart-shaped tables made straight from the traffic generator, for tests of training and
ranking that need no ClickHouse and no dbt (tests/integration/test_dbt_marts.py checks that
dbt builds the same columns from the same visits)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from analytics.traffic_generator import AdInventory, generate_visits

INVENTORY = AdInventory(((1, 11, 1), (2, 21, 1), (3, 31, 2), (1, 12, 2), (2, 22, 2)))
END = datetime(2026, 11, 20, 12, tzinfo=UTC)
ZONE = "Europe/Paris"


def ctr_frame(*, visitors: int, days: int, seed: int = 3) -> pd.DataFrame:
    """One row per generated impression with the columns of mart_ctr_features, and ``p``: the
    true click probability the generator drew the click from."""
    zone = ZoneInfo(ZONE)
    rows = []
    visits_before: dict[str, int] = {}
    impressions_before: dict[str, int] = {}
    clicks_before: dict[str, int] = {}
    campaign_before: dict[tuple[str, int], int] = {}
    for visit in generate_visits(
        days=days, visitors=visitors, timezone=ZONE, inventory=INVENTORY, seed=seed, end=END
    ):
        previous = visits_before.get(visit.visitor, 0)
        visits_before[visit.visitor] = previous + 1
        pageviews = [event for event in visit.events if event.kind == "pageview"]
        for view in visit.ads:
            before = [event for event in pageviews if event.at <= view.at]
            path = before[-1].path
            local = view.at.astimezone(zone)
            rows.append(
                {
                    "impression_id": view.impression,
                    "event_date": view.at.date(),
                    "impression_at": view.at,
                    "campaign_id": view.campaign,
                    "ad_id": view.ad,
                    "placement_id": view.placement,
                    "creative_type": "image",
                    "creative_size": "300x250",
                    "local_hour": local.hour,
                    "local_weekday": local.isoweekday(),
                    "device_type": visit.device.kind,
                    "country": visit.country,
                    "referrer_medium": visit.source.medium,
                    "referrer_source": visit.source.source,
                    "utm_campaign": visit.source.utm_campaign,
                    "page_path": path,
                    "page_section": "/" + path.split("/")[1],
                    "in_session": 1,
                    "is_returning": int(previous > 0),
                    "previous_sessions": previous,
                    "pageviews_before": len(before) - 1,
                    "seconds_in_session": int((view.at - pageviews[0].at).total_seconds()),
                    "prior_impressions": impressions_before.get(visit.visitor, 0),
                    "prior_clicks": clicks_before.get(visit.visitor, 0),
                    "prior_campaign_impressions": campaign_before.get(
                        (visit.visitor, view.campaign), 0
                    ),
                    "clicked": int(view.clicked),
                    "p": view.probability,
                }
            )
            impressions_before[visit.visitor] = impressions_before.get(visit.visitor, 0) + 1
            clicks_before[visit.visitor] = clicks_before.get(visit.visitor, 0) + view.clicked
            key = (visit.visitor, view.campaign)
            campaign_before[key] = campaign_before.get(key, 0) + 1
    # The export's types (ClickHouse UInt64 ids, UInt32 counts, UInt8 flags and hours).
    return pd.DataFrame(rows).astype(
        {
            **dict.fromkeys(["campaign_id", "ad_id", "placement_id"], "uint64"),
            **dict.fromkeys(
                ["local_hour", "local_weekday", "in_session", "is_returning", "clicked"], "uint8"
            ),
            **dict.fromkeys(
                [
                    "previous_sessions",
                    "pageviews_before",
                    "seconds_in_session",
                    "prior_impressions",
                    "prior_clicks",
                    "prior_campaign_impressions",
                ],
                "uint32",
            ),
        }
    )


def write_export(frame: pd.DataFrame, *, out_dir: Path, mart: str = "mart_ctr_features") -> Path:
    """``frame`` laid out as analytics.ml.export writes a mart: one Parquet file per day."""
    for day, rows in frame.groupby("event_date"):
        folder = out_dir / mart / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        rows.drop(columns=["p"], errors="ignore").to_parquet(folder / "part.parquet", index=False)
    return out_dir


def conversion_frame(*, visitors: int, days: int, seed: int = 3) -> pd.DataFrame:
    """One row per generated visit with the columns of mart_conversion_features; a visit
    converts when it has a Purchase (the marts' default goal)."""
    zone = ZoneInfo(ZONE)
    rows = []
    history: dict[str, tuple[int, int, datetime]] = {}  # visits, conversions, last event
    for visit in generate_visits(
        days=days, visitors=visitors, timezone=ZONE, inventory=INVENTORY, seed=seed, end=END
    ):
        started = visit.events[0].at
        local = started.astimezone(zone)
        visits, conversions, last_seen = history.get(visit.visitor, (0, 0, started))
        converted = any(event.name == "Purchase" for event in visit.events)
        entry = visit.events[0].path
        device, browser, os_name, _, _ = visit.device
        rows.append(
            {
                "session_id": f"{visit.visitor}:{visits + 1}",
                "event_date": started.date(),
                "started_at": started,
                "local_hour": local.hour,
                "local_weekday": local.isoweekday(),
                "device_type": device,
                "country": visit.country,
                "browser": browser,
                "os": os_name,
                "referrer_medium": visit.source.medium,
                "referrer_source": visit.source.source,
                "utm_source": visit.source.utm_source,
                "utm_medium": visit.source.utm_medium,
                "utm_campaign": visit.source.utm_campaign,
                "entry_page": entry,
                "entry_section": "/" + entry.split("/")[1],
                "is_returning": int(visits > 0),
                "previous_sessions": visits,
                "previous_conversions": conversions,
                "days_since_previous_session": (
                    (started - last_seen).total_seconds() / 86400 if visits else None
                ),
                "converted": int(converted),
            }
        )
        history[visit.visitor] = (visits + 1, conversions + converted, visit.events[-1].at)
    return pd.DataFrame(rows)
