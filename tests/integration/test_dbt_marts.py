"""The dbt project on embedded ClickHouse: ``dbt build`` (models and their dbt tests) over
generated traffic and a hand-made visitor, the marts' exact values, and the Parquet export.

dbt runs once per module, in a ClickHouse database of its own (same chdb engine, so the other
tests' rows stay out of the marts' dbt tests)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import pyarrow.dataset as pads
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from analytics import clickhouse_migrations
from analytics.click_model import ImpressionFeatures, click_probability
from analytics.ml.dbt_runner import DbtOutcome, dbt_build, dbt_invoke
from analytics.ml.export import MARTS, export_marts, mart_columns
from analytics.traffic_generator import AdInventory, Visit, bulk_load, generate_visits
from events.dedup import EventKey
from events.rows import AdRow, PageRow, clickhouse_time, encoder, essentials_decoder
from events.visits import VISIT_ID
from ingest.storage import store_new_rows
from naboria import clickhouse

pytestmark = [pytest.mark.clickhouse, pytest.mark.django_db]

DATABASE = "naboria_dbt_test"
END = datetime(2026, 11, 20, 12, tzinfo=UTC)
INVENTORY = AdInventory(((1, 11, 1), (2, 21, 1), (3, 31, 2)))
HAND_ZONE = "America/New_York"
VISITOR = "v-hand"


@dataclass
class Built:
    outcome: DbtOutcome
    seconds: float
    generated_site: str
    hand_site: str
    visits: list[Visit]
    ad_id: int
    impressions: dict[str, str]  # I1, I2, I3 -> impression id


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _ms(moment: datetime) -> str:
    return clickhouse_time(int(moment.timestamp() * 1000))


def _page(site: str, visitor: str, at: str, path: str, **fields: Any) -> bytes:
    moment = _at(at)
    row = {
        "event_id": str(uuid.uuid4()),
        "site_id": site,
        "timestamp": _ms(moment),
        "received_at": _ms(moment),
        "event_type": "pageview",
        "visitor_id": visitor,
        "consent_state": "none",
        "pathname": path,
        "url": f"https://hand.example{path}",
        "retention_days": 3650,
        "device_type": "mobile",
        "country": "US",
        **fields,
    }
    return encoder.encode(PageRow(**row))


def _visit_id(site: str, started: str) -> str:
    """The id of the hand-made visitor's visit that started at ``started`` (UTC)."""
    start_ms = int(_at(started).timestamp() * 1000)
    return str(
        clickhouse.get_client().command(
            f"SELECT {VISIT_ID} FROM (SELECT {{s:String}} AS site_id, {{v:String}} AS visitor_id,"  # noqa: S608
            " fromUnixTimestamp64Milli({ms:Int64}, 'UTC') AS started_at)",
            parameters={"s": site, "v": VISITOR, "ms": start_ms},
        )
    )


def _ad(site: str, visitor: str, at: str, kind: str, impression: str, **fields: Any) -> bytes:
    moment = _at(at)
    row = {
        "event_id": str(uuid.uuid4()),
        "impression_id": impression,
        "site_id": site,
        "timestamp": _ms(moment),
        "received_at": _ms(moment),
        "event_type": kind,
        "visitor_id": visitor,
        "consent_state": "none",
        "campaign_id": 2,
        "ad_id": 21,
        "placement_id": 1,
        "retention_days": 3650,
        "device_type": "mobile",
        "country": "US",
        **fields,
    }
    return encoder.encode(AdRow(**row))


def _hand_made_rows(site: str, ad_id: int) -> tuple[list[bytes], list[bytes], dict[str, str]]:
    """One visitor's three visits (the third starts 35 minutes after the second's last event),
    a booking in the second, three impressions (one clicked), an impression outside any visit,
    a bot, and one page event stored twice."""
    email = {"referrer_medium": "email", "referrer_source": "newsletter"}
    search = {"referrer_medium": "search", "referrer_source": "Google"}
    duplicate = _page(site, VISITOR, "2026-11-10 23:05:00", "/products", **email)
    pages = [
        _page(site, VISITOR, "2026-11-09 10:00:00", "/", **search),
        _page(site, VISITOR, "2026-11-09 10:01:00", "/pricing", **search),
        _page(site, VISITOR, "2026-11-10 23:00:00", "/", **email),
        duplicate,
        duplicate,
        _page(site, VISITOR, "2026-11-10 23:10:00", "/products/3", **email),
        _page(site, VISITOR, "2026-11-10 23:20:00", "/cart", **email),
        _page(
            site,
            VISITOR,
            "2026-11-10 23:20:30",
            "/cart",
            event_type="event",
            event_name="Booking",
            **email,
        ),
        _page(site, VISITOR, "2026-11-10 23:55:30", "/blog", referrer_medium="direct"),
        _page(site, "bot-1", "2026-11-10 23:00:00", "/", is_bot=1),
    ]
    ids = {name: uuid.uuid4().hex for name in ("I1", "I2", "I3", "bot")}
    creative = {"ad_id": ad_id}
    ads = [
        _ad(site, VISITOR, "2026-11-10 23:10:01", "impression", ids["I1"], **creative),
        _ad(site, VISITOR, "2026-11-10 23:10:02", "viewable", ids["I1"], **creative),
        _ad(site, VISITOR, "2026-11-10 23:10:03", "click", ids["I1"], **creative),
        _ad(site, VISITOR, "2026-11-10 23:55:31", "impression", ids["I2"]),
        _ad(site, VISITOR, "2026-11-11 05:00:00", "impression", ids["I3"], campaign_id=3),
        _ad(site, "bot-1", "2026-11-10 23:00:01", "impression", ids["bot"], is_bot=1),
        _ad(site, "bot-1", "2026-11-10 23:00:02", "click", ids["bot"], is_bot=1),
    ]
    return pages, ads, ids


@pytest.fixture(scope="module")
def built(django_db_setup: None, django_db_blocker: Any, clickhouse_schema: None) -> Any:
    from ads.models import Ad, Advertiser, Campaign, CampaignStatus, CreativeKind
    from sites.models import Site
    from tests.factories import SiteFactory

    with django_db_blocker.unblock():
        generated = cast(Site, SiteFactory(timezone="Europe/Paris"))
        hand = cast(Site, SiteFactory(timezone=HAND_ZONE))
        advertiser = Advertiser.objects.create(organization=hand.organization, name="Hotels")
        campaign = Campaign.objects.create(
            advertiser=advertiser, name="Rooms", status=CampaignStatus.ACTIVE
        )
        ad = Ad.objects.create(
            campaign=campaign,
            name="Room",
            kind=CreativeKind.IMAGE,
            width=300,
            height=250,
            image_url="https://cdn.example/room.png",
            click_url="https://hotels.example/",
        )
    visits = list(
        generate_visits(
            days=14,
            visitors=400,
            timezone="Europe/Paris",
            inventory=INVENTORY,
            seed=21,
            end=END,
        )
    )
    with override_settings(CLICKHOUSE_DATABASE=DATABASE):
        clickhouse.reset()
        try:
            clickhouse_migrations.apply_pending()
            bulk_load(site_id=generated.public_id, retention_days=3650, visits=iter(visits))
            pages, ads, impressions = _hand_made_rows(hand.public_id, ad.pk)
            # Through deduplication, as every writer stores rows: the duplicate is stored once.
            for table, encoded in (("page_events", pages), ("ad_events", ads)):
                keys = [EventKey.of(essentials_decoder.decode(row)) for row in encoded]
                store_new_rows(table, encoded, keys)
            started = time.monotonic()
            with django_db_blocker.unblock():
                outcome = dbt_build(
                    quiet=True, extra_vars={"site_conversion_goals": {hand.public_id: "Booking"}}
                )
            yield Built(
                outcome=outcome,
                seconds=time.monotonic() - started,
                generated_site=generated.public_id,
                hand_site=hand.public_id,
                visits=visits,
                ad_id=ad.pk,
                impressions=impressions,
            )
        finally:
            client = clickhouse.get_client()
            # The client is bound to DATABASE: a server refuses a query of a client whose
            # database is gone, so that one is dropped last.
            for suffix in ("_staging", "_intermediate", "_marts", ""):
                client.command(f"DROP DATABASE IF EXISTS {DATABASE}{suffix}")
            clickhouse.reset()
    clickhouse.reset()
    with django_db_blocker.unblock():
        # The organizations take their sites, secrets, advertisers, campaigns and ads along.
        generated.organization.delete()
        hand.organization.delete()


def rows(
    table: str, *, where: str = "1", order: str = "tuple()", columns: str = "*", **parameters: Any
) -> list[dict[str, Any]]:
    """Rows of a model as dicts (the table name and clauses are this module's; values are
    parameters)."""
    layer = {"stg": "staging", "int": "intermediate", "mart": "marts"}[table.split("_")[0]]
    database = f"{DATABASE}_{layer}"
    sql = f"SELECT {columns} FROM {database}.{table} WHERE {where} ORDER BY {order}"  # noqa: S608
    result = clickhouse.get_client().query(sql, parameters=parameters)
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def test_build_creates_every_model_and_passes_every_dbt_test(built):
    results = built.outcome.results
    models = {r.unique_id.split(".")[-1] for r in results if r.unique_id.startswith("model.")}
    assert models == {
        "stg_page_events",
        "stg_ad_events",
        "int_page_events_sessionized",
        "int_sessions",
        "int_ad_exposures",
        *MARTS,
    }
    tests = [r for r in results if r.unique_id.startswith("test.")]
    assert len(tests) > 50
    assert {r.status for r in results} <= {"success", "pass"}
    assert any("assert_sessions_respect_gap" in r.unique_id for r in tests)
    # dbt parse is most of it; the models and tests themselves take a second or two.
    assert built.seconds < 120


def test_ctr_features_carry_everything_the_click_model_uses(built):
    mart = {
        row["impression_id"]: row
        for row in rows("mart_ctr_features", where="site_id = {s:String}", s=built.generated_site)
    }
    impressions = [(visit, view) for visit in built.visits for view in visit.ads]
    assert len(impressions) > 300
    assert set(mart) == {view.impression for _, view in impressions}
    zone = ZoneInfo("Europe/Paris")
    same_probability = 0
    for visit, view in impressions:
        row = mart[view.impression]
        assert row["clicked"] == view.clicked
        assert row["device_type"] == visit.device.kind
        assert row["local_hour"] == view.at.astimezone(zone).hour
        assert row["local_weekday"] == view.at.astimezone(zone).isoweekday()
        assert row["campaign_id"] == view.campaign
        assert row["in_session"] == 1
        features = ImpressionFeatures(
            device=row["device_type"],
            local_hour=row["local_hour"],
            campaign_rank=INVENTORY.campaigns.index(row["campaign_id"]),
            returning=bool(row["is_returning"]),
            medium=row["referrer_medium"],
            pageviews_before=row["pageviews_before"],
        )
        same_probability += abs(click_probability(features) - view.probability) < 1e-12
    # The rest are generated visits of one visitor that overlap in time (the generator places
    # several on the last day), which any 30-minute sessionisation merges.
    assert same_probability / len(impressions) > 0.95


def test_hand_made_impressions_have_exact_features(built):
    ids = built.impressions
    mart = {
        row["impression_id"]: row
        for row in rows("mart_ctr_features", where="site_id = {s:String}", s=built.hand_site)
    }
    assert set(mart) == {ids["I1"], ids["I2"], ids["I3"]}  # the bot's impression is left out
    zone = ZoneInfo(HAND_ZONE)
    first = mart[ids["I1"]]
    shown = _at("2026-11-10 23:10:01").astimezone(zone)
    expected = {
        "session_id": _visit_id(built.hand_site, "2026-11-10 23:00:00"),
        "event_date": date(2026, 11, 10),
        "campaign_id": 2,
        "ad_id": built.ad_id,
        "creative_type": "image",  # from the ad in Django: the ad event did not say
        "creative_size": "300x250",
        "local_hour": shown.hour,
        "local_weekday": shown.isoweekday(),
        "device_type": "mobile",
        "country": "US",
        "referrer_medium": "email",
        "referrer_source": "newsletter",
        "page_path": "/products/3",
        "page_section": "/products",
        "in_session": 1,
        "is_returning": 1,
        "previous_sessions": 1,
        "pageviews_before": 2,  # "/" and "/products" (stored twice, counted once)
        "seconds_in_session": 601,
        "prior_impressions": 0,
        "prior_clicks": 0,
        "prior_campaign_impressions": 0,
        "clicked": 1,
    }
    assert {name: first[name] for name in expected} == expected
    assert shown.hour == 18
    second = mart[ids["I2"]]
    assert (
        second["session_id"],
        second["previous_sessions"],
        second["pageviews_before"],
        second["referrer_medium"],
        second["page_path"],
        second["prior_impressions"],
        second["prior_clicks"],
        second["prior_campaign_impressions"],
        second["clicked"],
    ) == (_visit_id(built.hand_site, "2026-11-10 23:55:30"), 2, 0, "direct", "/blog", 1, 1, 1, 0)
    outside = mart[ids["I3"]]
    assert (
        outside["session_id"],
        outside["in_session"],
        outside["referrer_medium"],
        outside["is_returning"],
        outside["previous_sessions"],
        outside["prior_impressions"],
        outside["prior_clicks"],
        outside["prior_campaign_impressions"],
    ) == (None, 0, "unknown", 1, 3, 2, 1, 0)
    exposures = rows(
        "int_ad_exposures", where="site_id = {s:String}", order="impression_at", s=built.hand_site
    )
    assert [(r["viewable"], r["converted_after"]) for r in exposures] == [(1, 1), (0, 0), (0, 0)]


def test_visits_split_after_30_minutes_and_convert_on_the_sites_goal(built):
    visits = rows(
        "mart_conversion_features",
        where="site_id = {s:String}",
        order="started_at",
        s=built.hand_site,
    )
    assert [v["visitor_id"] for v in visits] == [VISITOR] * 3  # no bot
    assert [v["started_at"].replace(tzinfo=UTC) for v in visits] == [
        _at("2026-11-09 10:00:00"),
        _at("2026-11-10 23:00:00"),
        _at("2026-11-10 23:55:30"),
    ]
    assert [v["converted"] for v in visits] == [0, 1, 0]  # Booking is this site's goal
    assert [v["referrer_medium"] for v in visits] == ["search", "email", "direct"]
    assert [v["previous_conversions"] for v in visits] == [0, 0, 1]
    assert [v["session_pageviews"] for v in visits] == [2, 4, 1]
    assert [v["session_ad_impressions"] for v in visits] == [0, 1, 1]
    assert visits[0]["days_since_previous_session"] is None
    assert visits[1]["days_since_previous_session"] == pytest.approx(
        (_at("2026-11-10 23:00:00") - _at("2026-11-09 10:01:00")) / timedelta(days=1)
    )
    # The generated site keeps the default goal, Purchase.
    generated = rows(
        "mart_conversion_features",
        columns="sum(converted) AS converted",
        where="site_id = {s:String}",
        s=built.generated_site,
    )[0]
    purchases = sum(any(e.name == "Purchase" for e in visit.events) for visit in built.visits)
    assert 0 < generated["converted"] <= purchases
    assert generated["converted"] >= 0.9 * purchases


def test_user_features_summarise_each_visitor(built):
    users = rows("mart_user_features", where="site_id = {s:String}", s=built.hand_site)
    assert len(users) == 1
    user = users[0]
    assert (
        user["visitor_id"],
        user["sessions"],
        user["active_days"],
        user["pageviews"],
        user["converted_sessions"],
        user["ad_impressions"],
        user["ad_clicks"],
        user["first_referrer_medium"],
        user["event_date"],
    ) == (VISITOR, 3, 2, 7, 1, 3, 1, "search", date(2026, 11, 11))
    assert user["ad_ctr"] == pytest.approx(1 / 3)
    generated = rows(
        "mart_user_features",
        columns="count() AS visitors",
        where="site_id = {s:String}",
        s=built.generated_site,
    )[0]
    assert generated["visitors"] == len({visit.visitor for visit in built.visits})


def test_export_writes_one_parquet_file_per_mart_and_day(built, tmp_path):
    (tmp_path / "mart_ctr_features" / "date=1999-01-01").mkdir(parents=True)  # a stale day
    exported = export_marts(out_dir=tmp_path)
    assert [mart.name for mart in exported] == list(MARTS)
    for mart in exported:
        days = rows(mart.name, columns="DISTINCT event_date", order="event_date")
        assert mart.days == tuple(day["event_date"] for day in days)
        folders = sorted(path.name for path in (tmp_path / mart.name).iterdir())
        assert folders == [f"date={day.isoformat()}" for day in mart.days]
        assert all((tmp_path / mart.name / name / "part.parquet").is_file() for name in folders)
        table = pads.dataset(tmp_path / mart.name, format="parquet", partitioning="hive").to_table()
        count = rows(mart.name, columns="count() AS n")[0]["n"]
        assert table.num_rows == mart.rows == count
        documented = [column["name"] for column in mart_columns(mart.name)]
        assert table.column_names == [*documented, "date"]
    ctr = pads.dataset(tmp_path / "mart_ctr_features", format="parquet", partitioning="hive")
    hand = ctr.to_table(filter=pads.field("site_id") == built.hand_site).to_pylist()
    assert sorted(row["clicked"] for row in hand) == [0, 0, 1]
    assert {str(row["date"]) for row in hand} == {"2026-11-10", "2026-11-11"}


def test_mart_columns_name_the_features_and_the_label(built):
    features = {column["name"] for column in mart_columns("mart_ctr_features", role="feature")}
    assert {
        "device_type",
        "local_hour",
        "campaign_id",
        "is_returning",
        "referrer_medium",
        "pageviews_before",
        "prior_clicks",
    } <= features
    assert [c["name"] for c in mart_columns("mart_ctr_features", role="label")] == ["clicked"]
    assert [c["name"] for c in mart_columns("mart_conversion_features", role="label")] == [
        "converted"
    ]
    assert "session_pageviews" not in {
        c["name"] for c in mart_columns("mart_conversion_features", role="feature")
    }


def test_management_commands_run_dbt_and_export(built, tmp_path, capsys):
    call_command("dbt", "ls", "--resource-type", "model", "--output", "name")
    listed = capsys.readouterr().out
    assert "mart_ctr_features" in listed
    assert "int_sessions" in listed
    with pytest.raises(CommandError, match="FAILED"):
        call_command("dbt", "run-operation", "no_such_macro")
    assert not dbt_invoke(["run-operation", "no_such_macro"], quiet=True).success
    call_command("export_marts", "--out", str(tmp_path), "--mart", "mart_user_features")
    assert "mart_user_features:" in capsys.readouterr().out
    assert [path.name for path in tmp_path.iterdir()] == ["mart_user_features"]
