"""Video numbers of the ads report - starts, quartiles, completes and the completion rate - against
a small hand-made data set in ClickHouse, per campaign and per ad, through the report and its
API (JSON and CSV)."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime
from typing import cast

import pytest
from rest_framework.test import APIClient

from analytics.reports import ads_and_consent
from analytics.reports.query import ReportQuery
from events.rows import AdRow, clickhouse_time, encoder
from ingest.storage import insert_rows
from sites.models import Site
from sites.services import api_token_create
from tests.factories import OrganizationFactory, SiteFactory

pytestmark = [pytest.mark.clickhouse, pytest.mark.usefixtures("clickhouse_schema")]

# (campaign, ad, event type, how many, is_bot), all on 2026-11-20 10:30 UTC unless noted.
#   ad 10 (campaign 1): 4 impressions, 4 starts, 3 first quartiles, 3 midpoints, 2 third
#       quartiles, 1 complete, and a pause, a mute, a skip and an error (not counted)
#   ad 11 (campaign 1): 3 starts, 3 first quartiles, 2 midpoints, 2 third quartiles, 2 completes
#   ad 20 (campaign 2): 2 banner impressions and a click, no video
#   a bot's start and complete of ad 11, and ad 10's start and complete of the next day: left out
DATA = [
    (1, 10, "impression", 4, 0),
    (1, 10, "start", 4, 0),
    (1, 10, "firstQuartile", 3, 0),
    (1, 10, "midpoint", 3, 0),
    (1, 10, "thirdQuartile", 2, 0),
    (1, 10, "complete", 1, 0),
    (1, 10, "pause", 1, 0),
    (1, 10, "mute", 1, 0),
    (1, 10, "skip", 1, 0),
    (1, 10, "error", 1, 0),
    (1, 11, "start", 3, 0),
    (1, 11, "firstQuartile", 3, 0),
    (1, 11, "midpoint", 2, 0),
    (1, 11, "thirdQuartile", 2, 0),
    (1, 11, "complete", 2, 0),
    (2, 20, "impression", 2, 0),
    (2, 20, "click", 1, 0),
    (1, 11, "start", 1, 1),
    (1, 11, "complete", 1, 1),
]
NEXT_DAY = [(1, 10, "start", 1, 0), (1, 10, "complete", 1, 0)]


def rows(site: str, data: list[tuple[int, int, str, int, int]], moment: datetime) -> list[bytes]:
    at = clickhouse_time(int(moment.timestamp() * 1000))
    return [
        encoder.encode(
            AdRow(
                event_id=str(uuid.uuid4()),
                impression_id=uuid.uuid4().hex,
                site_id=site,
                timestamp=at,
                received_at=at,
                event_type=kind,
                visitor_id="v",
                consent_state="none",
                campaign_id=campaign,
                ad_id=ad,
                placement_id=5,
                creative_type="video",
                retention_days=400,
                is_bot=bot,
            )
        )
        for campaign, ad, kind, count, bot in data
        for _ in range(count)
    ]


@pytest.fixture(scope="module")
def site_id() -> str:
    site = f"video-{uuid.uuid4().hex[:8]}"
    insert_rows(
        "ad_events",
        rows(site, DATA, datetime(2026, 11, 20, 10, 30, tzinfo=UTC))
        + rows(site, NEXT_DAY, datetime(2026, 11, 21, 10, 30, tzinfo=UTC))
        # Another site's video events: never in this site's report.
        + rows(f"other-{site}", DATA, datetime(2026, 11, 20, 10, 30, tzinfo=UTC)),
    )
    return site


def report(site: str, by: str, **params: str) -> list[dict[str, object]]:
    query = ReportQuery.parse(
        site_id=site, timezone="UTC", params={"from": "2026-11-20", "to": "2026-11-20", **params}
    )
    return ads_and_consent.ad_performance(query, by=by)["results"]


def video(starts: int, first: int, mid: int, third: int, completes: int, rate: float) -> dict:
    return {
        "video_starts": starts,
        "video_first_quartiles": first,
        "video_midpoints": mid,
        "video_third_quartiles": third,
        "video_completes": completes,
        "video_completion_rate": rate,
    }


VIDEO_FIELDS = list(video(0, 0, 0, 0, 0, 0.0))


def test_video_numbers_per_ad(site_id):
    by_ad = {
        row["ad"]: {field: row[field] for field in VIDEO_FIELDS} for row in report(site_id, "ad")
    }
    assert by_ad == {
        "10": video(4, 3, 3, 2, 1, 25.0),  # 1 / 4
        "11": video(3, 3, 2, 2, 2, 66.7),  # 2 / 3
        "20": video(0, 0, 0, 0, 0, 0.0),  # no start: no rate rather than a division by zero
    }


def test_video_numbers_per_campaign_next_to_the_banner_numbers(site_id):
    assert report(site_id, "campaign") == [
        {
            "campaign": "1",
            "impressions": 4,
            "viewable_impressions": 0,
            "viewable_rate": 0.0,
            "clicks": 0,
            "ctr": 0.0,
            **video(7, 6, 5, 4, 3, 42.9),  # 3 / 7
        },
        {
            "campaign": "2",
            "impressions": 2,
            "viewable_impressions": 0,
            "viewable_rate": 0.0,
            "clicks": 1,
            "ctr": 50.0,
            **video(0, 0, 0, 0, 0, 0.0),
        },
    ]


def test_bots_count_only_when_asked(site_id):
    (campaign,) = [
        row for row in report(site_id, "campaign", bots="include") if row["campaign"] == "1"
    ]
    assert {field: campaign[field] for field in VIDEO_FIELDS} == video(8, 6, 5, 4, 4, 50.0)


@pytest.mark.django_db
def test_the_api_and_its_csv_export_carry_the_video_numbers(site_id):
    organization = OrganizationFactory()
    site = cast(Site, SiteFactory(organization=organization, timezone="UTC"))
    # The data set's rows, under this site's public id.
    insert_rows("ad_events", rows(site.public_id, DATA, datetime(2026, 11, 20, 10, 30, tzinfo=UTC)))
    _, token = api_token_create(organization=organization, name="reports")
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {token}")
    path = f"/api/v1/sites/{site.public_id}/reports/ads?by=ad&from=2026-11-20&to=2026-11-20"

    answer = client.get(path)
    assert answer.status_code == 200
    (ad,) = [row for row in answer.json()["results"] if row["ad"] == "11"]
    assert {field: ad[field] for field in VIDEO_FIELDS} == video(3, 3, 2, 2, 2, 66.7)
    exported = client.get(f"{path}&format=csv")
    assert exported.status_code == 200
    (line,) = [
        row for row in csv.DictReader(io.StringIO(exported.content.decode())) if row["ad"] == "10"
    ]
    assert (line["video_starts"], line["video_completes"], line["video_completion_rate"]) == (
        "4",
        "1",
        "25.0",
    )
