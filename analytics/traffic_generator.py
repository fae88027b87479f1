"""Realistic generated traffic for a site: visitors with devices, places (country, region,
city) and sources, visits that walk through the site's pages, custom events with properties,
engagement, outbound links, file downloads, and ad impressions, viewable impressions and clicks
drawn from the documented click model (analytics.click_model).

Two ways in, used by ``python manage.py generate_traffic``:
- ``bulk_load``: rows straight into ClickHouse (what the analytics benchmarks use; any history),
  with the source, medium and UTM tags ingestion would derive from the same events;
- ``send_through_ingest``: every visit as a real /collect batch and every ad event as a real
  /ad-event, through validation, enrichment, the sink and the drain or direct writer (the
  server clamps event times to the last 7 days, so history is limited to that).

Both send the events a tracker would (``tracker_events``): the landing page's URL carries the
campaign's UTM tags and pageviews carry the external referrer. Both also take the shop's
mobile app updating itself over the air (``generate_app_updates``): devices that install each
release some hours after it ships, sometimes fail, cancel, retry or roll back, sending the
update events of docs/app-releases.md.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, cast
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from asgiref.sync import async_to_sync

from ads.endpoints import ENDPOINTS as AD_ENDPOINTS
from ads.signing import Delivery, sign_delivery
from analytics.click_model import ImpressionFeatures, click_probability
from events.ids import ad_event_id, new_event_id
from events.rows import AdRow, PageRow, clickhouse_time, encoder
from events.schemas import UpdateEvent, page_event_decoder, update_payload
from ingest.endpoints import ENDPOINTS as TRACKING_ENDPOINTS
from ingest.enrichment import classify_referrer
from ingest.http import TrackingRequest, dispatch
from ingest.services import page_url
from ingest.storage import insert_rows


class Device(NamedTuple):
    kind: str
    browser: str
    os: str
    share: float
    user_agent: str


class Source(NamedTuple):
    """How a visit arrives: the referrer and the UTM tags of its landing URL."""

    referrer: str
    utm_source: str
    utm_medium: str
    utm_campaign: str
    share: float

    @property
    def utm(self) -> dict[str, str]:
        tags = {
            "utm_source": self.utm_source,
            "utm_medium": self.utm_medium,
            "utm_campaign": self.utm_campaign,
        }
        return {key: value for key, value in tags.items() if value}

    @property
    def source(self) -> str:
        return classify_referrer(referrer=self.referrer, page_host=HOST, utm=self.utm)[0]

    @property
    def medium(self) -> str:
        return classify_referrer(referrer=self.referrer, page_host=HOST, utm=self.utm)[1]


DEVICES = [
    Device(
        "desktop",
        "Chrome",
        "Windows",
        0.34,
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    ),
    Device(
        "desktop",
        "Safari",
        "Mac OS X",
        0.12,
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    ),
    Device(
        "desktop",
        "Firefox",
        "Linux",
        0.04,
        "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    ),
    Device(
        "mobile",
        "Mobile Safari",
        "iOS",
        0.22,
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    ),
    Device(
        "mobile",
        "Chrome Mobile",
        "Android",
        0.22,
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    ),
    Device(
        "tablet",
        "Mobile Safari",
        "iOS",
        0.06,
        "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    ),
]
COUNTRIES = {
    "FR": 0.3,
    "DE": 0.15,
    "GB": 0.12,
    "US": 0.18,
    "ES": 0.08,
    "IT": 0.07,
    "BE": 0.05,
    "CA": 0.05,
}
# Where in each country visitors are: (region, city, share). A region's cities are several so
# that the dashboard's drill-down from country to region to city has something to show.
PLACES = {
    "FR": [
        ("Île-de-France", "Paris", 0.45),
        ("Île-de-France", "Versailles", 0.1),
        ("Auvergne-Rhône-Alpes", "Lyon", 0.25),
        ("Occitanie", "Toulouse", 0.2),
    ],
    "DE": [("Berlin", "Berlin", 0.4), ("Bavaria", "Munich", 0.35), ("Bavaria", "Nuremberg", 0.25)],
    "GB": [
        ("England", "London", 0.6),
        ("England", "Manchester", 0.25),
        ("Scotland", "Edinburgh", 0.15),
    ],
    "US": [
        ("California", "San Francisco", 0.3),
        ("California", "Los Angeles", 0.3),
        ("New York", "New York", 0.3),
        ("Texas", "Paris", 0.1),
    ],
    "ES": [("Madrid", "Madrid", 0.6), ("Catalonia", "Barcelona", 0.4)],
    "IT": [("Lombardy", "Milan", 0.6), ("Lazio", "Rome", 0.4)],
    "BE": [("Brussels Capital", "Brussels", 0.7), ("Flanders", "Antwerp", 0.3)],
    "CA": [("Ontario", "Toronto", 0.6), ("Quebec", "Montreal", 0.4)],
}
HOST = "shop.example"
# Source and medium are ingestion's reading of these (ingest.enrichment.classify_referrer):
# direct, Google / search, Bing / search, Facebook / social, Twitter / social,
# newsletter / email, blog.example.org / referral, google / paid.
SOURCES = [
    Source("", "", "", "", 0.3),
    Source("https://www.google.com/", "", "", "", 0.32),
    Source("https://www.bing.com/", "", "", "", 0.04),
    Source("https://www.facebook.com/", "", "", "", 0.1),
    Source("https://t.co/", "", "", "", 0.04),
    Source("", "newsletter", "email", "winter-sale", 0.08),
    Source("https://blog.example.org/post", "", "", "", 0.07),
    Source("https://www.google.com/", "google", "cpc", "brand", 0.05),
]
PRODUCTS = 40
OUTBOUND_LINKS = ["https://github.com/naboria/naboria", "https://www.youtube.com/@naboria"]
IP_OCTETS = ((11, 223), (0, 255), (0, 255), (1, 254))
# Relative traffic per local hour: quiet nights, an evening peak.
HOUR_WEIGHTS = [
    1,
    0.6,
    0.4,
    0.3,
    0.3,
    0.4,
    0.8,
    1.4,
    2,
    2.3,
    2.4,
    2.5,
    2.6,
    2.5,
    2.4,
    2.4,
    2.5,
    2.8,
    3.2,
    3.5,
    3.4,
    2.9,
    2.2,
    1.5,
]


@dataclass
class Event:
    kind: str  # pageview, event, engagement, outbound, download
    path: str
    at: datetime
    name: str = ""
    props: dict[str, str] = field(default_factory=dict)
    visible_ms: int = 0
    scroll_depth: int = 0
    target: str = ""  # the followed link of outbound and download


@dataclass
class AdView:
    impression: str
    campaign: int
    ad: int
    placement: int
    at: datetime
    viewable: bool
    clicked: bool
    probability: float


@dataclass
class Visit:
    visitor: str
    device: Device
    country: str
    source: Source
    ip: str
    events: list[Event]
    ads: list[AdView]
    region: str = ""
    city: str = ""


@dataclass(frozen=True)
class AdInventory:
    """(campaign, ad, placement) triples ads can be drawn from, campaigns in a stable order."""

    triples: tuple[tuple[int, int, int], ...]

    @property
    def campaigns(self) -> list[int]:
        return sorted({campaign for campaign, _, _ in self.triples})


def _next_path(rng: random.Random, path: str) -> str | None:
    if path == "/thanks" or rng.random() > 0.68:
        return None
    if path.startswith("/products/"):
        return rng.choice(["/cart", "/products", f"/products/{rng.randint(1, PRODUCTS)}"])
    if path == "/cart":
        return rng.choice(["/checkout", "/products"])
    if path == "/checkout":
        return "/thanks" if rng.random() < 0.6 else None
    if path.startswith("/blog"):
        return rng.choice(["/products", f"/blog/post-{rng.randint(1, 30)}", "/"])
    return rng.choice(
        ["/products", f"/products/{rng.randint(1, PRODUCTS)}", "/pricing", "/blog", "/about"]
    )


def _landing(rng: random.Random, medium: str) -> str:
    if medium in {"search", "paid"}:
        return rng.choice([f"/products/{rng.randint(1, PRODUCTS)}", "/", "/pricing"])
    if medium == "social":
        return f"/blog/post-{rng.randint(1, 30)}"
    if medium == "email":
        return "/products"
    return "/"


def generate_visits(
    *,
    days: int,
    visitors: int,
    timezone: str,
    inventory: AdInventory,
    seed: int = 7,
    end: datetime | None = None,
) -> Iterator[Visit]:
    """Visits of ``visitors`` visitors over the ``days`` days up to ``end`` (now), the last
    one until ``end`` only: a visitor's first visit falls on any of the days, returning visits
    on later days, and a visit that would come after ``end`` is not made."""
    rng = random.Random(seed)  # noqa: S311 (simulated traffic)
    # Places from a generator of their own: the rest of the traffic of a seed stays as it was.
    places = random.Random(f"places-{seed}")  # noqa: S311 (simulated traffic)
    zone = ZoneInfo(timezone)
    finish = end or datetime.now(UTC)
    campaigns = inventory.campaigns
    for number in range(visitors):
        device = rng.choices(DEVICES, weights=[option.share for option in DEVICES])[0]
        country = rng.choices(list(COUNTRIES), weights=list(COUNTRIES.values()))[0]
        region, city, _ = places.choices(PLACES[country], [place[2] for place in PLACES[country]])[
            0
        ]
        visitor = f"gen-{seed}-{number}"
        ip = ".".join(str(rng.randint(low, high)) for low, high in IP_OCTETS)
        visit_count = min(1 + int(rng.expovariate(1.4)), 6)
        first_day = rng.randint(0, days - 1)
        for index in range(visit_count):
            days_before_end = first_day - index * rng.randint(1, 4)
            day = finish.astimezone(zone).date() - timedelta(days=days_before_end)
            hour = rng.choices(range(24), weights=HOUR_WEIGHTS)[0]
            start = datetime(
                day.year,
                day.month,
                day.day,
                hour,
                rng.randint(0, 59),
                rng.randint(0, 59),
                tzinfo=zone,
            ).astimezone(UTC)
            if days_before_end < 0 or start >= finish:
                break  # the end is now: later visits have not happened
            source = (
                rng.choices(SOURCES, weights=[option.share for option in SOURCES])[0]
                if index == 0 or rng.random() < 0.5
                else SOURCES[0]
            )
            visit = _visit(
                rng,
                visitor,
                device,
                country,
                source,
                ip,
                start,
                index > 0,
                inventory,
                campaigns,
                zone,
            )
            visit.region, visit.city = region, city
            # A visit that began just before the end has not gone further yet.
            visit.events = [event for event in visit.events if event.at <= finish]
            visit.ads = [view for view in visit.ads if view.at <= finish]
            yield visit


def _visit(
    rng: random.Random,
    visitor: str,
    device: Device,
    country: str,
    source: Source,
    ip: str,
    start: datetime,
    returning: bool,
    inventory: AdInventory,
    campaigns: list[int],
    zone: ZoneInfo,
) -> Visit:
    events: list[Event] = []
    ads: list[AdView] = []
    moment = start
    path: str | None = _landing(rng, source.medium)
    pageviews = 0
    while path is not None and pageviews < 12:
        events.append(Event("pageview", path, moment))
        pageviews += 1
        dwell = timedelta(seconds=max(3, rng.lognormvariate(3.2, 0.8)))
        if path.startswith("/products/") and rng.random() < 0.18:
            events.append(
                Event(
                    "event",
                    path,
                    moment + dwell / 2,
                    "AddToCart",
                    {"product": path.rsplit("/", 1)[1]},
                )
            )
        if path == "/thanks":
            events.append(
                Event(
                    "event",
                    path,
                    moment + timedelta(seconds=2),
                    "Purchase",
                    {"value": str(rng.choice([19, 49, 99, 149]))},
                )
            )
        if path == "/pricing" and rng.random() < 0.12:
            events.append(
                Event(
                    "event",
                    path,
                    moment + dwell / 2,
                    "Signup",
                    {"plan": rng.choice(["free", "pro", "team"])},
                )
            )
        if path.startswith("/blog") and rng.random() < 0.08:
            link = rng.choice(OUTBOUND_LINKS)
            events.append(Event("outbound", path, moment + dwell * 0.9, target=link))
        if path == "/pricing" and rng.random() < 0.06:
            brochure = f"https://{HOST}/files/price-list.pdf"
            events.append(Event("download", path, moment + dwell * 0.8, target=brochure))
        if inventory.triples and rng.random() < 0.55:
            campaign, ad, placement = rng.choice(inventory.triples)
            shown = moment + timedelta(milliseconds=rng.randint(200, 1500))
            features = ImpressionFeatures(
                device=device[0],
                local_hour=shown.astimezone(zone).hour,
                campaign_rank=campaigns.index(campaign),
                returning=returning,
                medium=source.medium,
                pageviews_before=pageviews - 1,
            )
            probability = click_probability(features)
            ads.append(
                AdView(
                    uuid.uuid4().hex,
                    campaign,
                    ad,
                    placement,
                    shown,
                    rng.random() < 0.62,
                    rng.random() < probability,
                    probability,
                )
            )
        if rng.random() < 0.8:
            events.append(
                Event(
                    "engagement",
                    path,
                    moment + dwell,
                    visible_ms=int(dwell.total_seconds() * 1000),
                    scroll_depth=rng.choice([25, 50, 75, 100]),
                )
            )
        moment += dwell + timedelta(seconds=rng.randint(1, 20))
        path = _next_path(rng, path)
    return Visit(visitor, device, country, source, ip, events, ads)


APP = "com.example.shop"
# The app's releases: the first is installed everywhere at the start, each next one ships at
# an equal share of the period and reaches a device some hours later.
RELEASES = ("3.1.0", "3.2.0", "3.3.0")
DEVICE_MODELS = {
    "iOS": (("Apple", "iPhone 15"), ("Apple", "iPhone 13"), ("Apple", "iPhone SE")),
    "Android": (("Google", "Pixel 8"), ("Samsung", "Galaxy S23"), ("Xiaomi", "Redmi Note 12")),
}
# (stage, error code, message): how an attempt fails, by stage.
FAILURES = {
    "download": (("E_NETWORK_TIMEOUT", "download timed out"), ("E_DISK_FULL", "no space left")),
    "verify": (("E_SIGNATURE", "package signature mismatch"),),
    "install": (("E_INSTALL_INTERRUPTED", "app killed during install"),),
}


@dataclass
class AppDevice:
    """A device of the app and its update events, as the app sends them to /collect."""

    visitor: str
    device: Device
    country: str
    ip: str
    events: list[dict[str, Any]]


def generate_app_updates(
    *, days: int, devices: int, seed: int = 7, end: datetime | None = None
) -> Iterator[AppDevice]:
    """Update events of ``devices`` phones over the ``days`` days up to ``end`` (now): each
    tries every release after it ships (up to three attempts, hours apart); an attempt is
    installed, or cancelled (3 %), or fails at download (4 %), verification (2 %) or install
    (2 %); 2 % of installs are rolled back. Events after ``end`` are not made."""
    rng = random.Random(seed)  # noqa: S311 (simulated traffic)
    finish = end or datetime.now(UTC)
    first = finish - timedelta(days=days)
    phones = [device for device in DEVICES if device.os in DEVICE_MODELS]
    for number in range(devices):
        device = rng.choices(phones, weights=[option.share for option in phones])[0]
        country = rng.choices(list(COUNTRIES), weights=list(COUNTRIES.values()))[0]
        ip = ".".join(str(rng.randint(low, high)) for low, high in IP_OCTETS)
        maker, model = rng.choice(DEVICE_MODELS[device.os])
        context = {"device_model": model, "device_manufacturer": maker, "os": device.os}
        running, events = RELEASES[0], []
        for index, release in enumerate(RELEASES[1:], start=1):
            moment = first + (finish - first) * index / len(RELEASES)
            for _ in range(3):
                moment += timedelta(hours=rng.expovariate(1 / 12))
                attempt, running = _update_attempt(rng, running, release, moment, context)
                events += [event for event in attempt if event["ts"] <= finish.timestamp() * 1000]
                if running == release or moment >= finish:
                    break
        if events:
            yield AppDevice(f"app-{seed}-{number}", device, country, ip, events)


def _update_attempt(
    rng: random.Random, current: str, target: str, start: datetime, context: dict[str, str]
) -> tuple[list[dict[str, Any]], str]:
    """One attempt to update from ``current`` to ``target``: its events and the version the
    device runs afterwards."""
    common = {
        "current_version": current,
        "target_version": target,
        **context,
        "battery_level": rng.randint(15, 100),
        "storage_available_mb": rng.randint(200, 60_000),
    }
    events: list[dict[str, Any]] = []
    moment = start

    def step(kind: str, after_ms: float, **fields: Any) -> None:
        nonlocal moment
        moment += timedelta(milliseconds=after_ms)
        at = int(moment.timestamp() * 1000)
        event_id = new_event_id(at_millis=at)
        events.append({"type": kind, "id": event_id, "ts": at, **common, **fields})

    def failed(stage: str) -> tuple[list[dict[str, Any]], str]:
        code, message = rng.choice(FAILURES[stage])
        step("update_failed", 500, error_code=code, failure_stage=stage, error_message=message)
        return events, current

    outcome = rng.random()
    step("update_started", 0)
    if outcome < 0.03:
        step("update_cancelled", 2000, cancellation_reason="user")
        return events, current
    size = rng.randint(8, 60) * 1_000_000
    speed = round(rng.lognormvariate(2.8, 0.7), 2)  # megabits per second, median ~16
    download_ms = int(size * 8 / 1000 / speed)
    step("update_downloading", download_ms / 2, progress=50, download_speed_mbps=speed)
    if outcome < 0.07:
        return failed("download")
    step(
        "update_downloaded",
        download_ms / 2,
        package_size_bytes=size,
        download_duration_ms=download_ms,
        download_speed_mbps=speed,
    )
    if outcome < 0.09:
        return failed("verify")
    install_ms = int(rng.lognormvariate(8.3, 0.5))  # median ~4 s
    step("update_installing", 300, progress=50)
    if outcome < 0.11:
        return failed("install")
    step("update_installed", install_ms, install_duration_ms=install_ms)
    if rng.random() < 0.02:
        step("rollback_started", 60_000, current_version=target, rollback_reason="crash loop")
        step("rollback_completed", 1500, rollback_duration_ms=1500)
        return events, current
    return events, target


def app_update_rows(site_id: str, retention_days: int, device: AppDevice) -> list[bytes]:
    """The rows ingestion would store for the device's update events (payload by ingestion's
    own function, so the reports read them as they read sent ones)."""
    rows = []
    for sent in device.events:
        event = cast(UpdateEvent, page_event_decoder.decode(encoder.encode(sent)))
        moment = clickhouse_time(sent["ts"])
        rows.append(
            encoder.encode(
                PageRow(
                    event_id=sent["id"],
                    site_id=site_id,
                    timestamp=moment,
                    received_at=moment,
                    event_type=sent["type"],
                    visitor_id=device.visitor,
                    consent_state="none",
                    pathname="/",
                    url=f"app://{APP}/",
                    retention_days=retention_days,
                    app_id=APP,
                    hostname=APP,
                    country=device.country,
                    browser=device.device.browser,
                    os=device.device.os,
                    device_type=device.device.kind,
                    properties=update_payload(event),
                )
            )
        )
    return rows


def _ms(moment: datetime) -> str:
    return clickhouse_time(int(moment.timestamp() * 1000))


def tracker_events(visit: Visit) -> list[dict[str, object]]:
    """The visit's events as the tracker sends them to /collect: the landing pageview's URL
    carries the UTM tags of the campaign link, pageviews carry the external referrer."""
    events: list[dict[str, object]] = []
    for event in visit.events:
        query = f"?{urlencode(visit.source.utm)}" if not events and visit.source.utm else ""
        events.append(
            {
                "type": event.kind,
                "url": f"https://{HOST}{event.path}{query}",
                "ts": int(event.at.timestamp() * 1000),
                **({"name": event.name, "props": event.props} if event.kind == "event" else {}),
                **(
                    {"visible_ms": event.visible_ms, "scroll_depth": event.scroll_depth}
                    if event.kind == "engagement"
                    else {}
                ),
                **({"target": event.target} if event.target else {}),
                **(
                    {"referrer": visit.source.referrer}
                    if event.kind == "pageview" and visit.source.referrer
                    else {}
                ),
            }
        )
    return events


def bulk_rows(site_id: str, retention_days: int, visit: Visit) -> tuple[list[bytes], list[bytes]]:
    """The rows ingestion would store for the visit's tracker events (the same source, medium
    and UTM tags, by ingestion's own functions), and its ad events."""
    device, browser, os, _, _ = visit.device
    pages = []
    for event, sent in zip(visit.events, tracker_events(visit), strict=True):
        url = str(sent["url"])
        referrer = str(sent.get("referrer", ""))
        _, _, utm = page_url(url) or ("", "", {})
        source, medium = classify_referrer(referrer=referrer, page_host=HOST, utm=utm)
        pages.append(
            encoder.encode(
                PageRow(
                    # Made when the event happened, as a client makes it.
                    event_id=new_event_id(at_millis=int(event.at.timestamp() * 1000)),
                    site_id=site_id,
                    timestamp=_ms(event.at),
                    received_at=_ms(event.at),
                    event_type=event.kind,
                    visitor_id=visit.visitor,
                    consent_state="none",
                    pathname=event.path,
                    url=url,
                    retention_days=retention_days,
                    event_name=event.name,
                    hostname=HOST,
                    referrer=referrer,
                    referrer_source=source,
                    referrer_medium=medium,
                    utm_source=utm.get("utm_source", ""),
                    utm_medium=utm.get("utm_medium", ""),
                    utm_campaign=utm.get("utm_campaign", ""),
                    country=visit.country,
                    region=visit.region,
                    city=visit.city,
                    browser=browser,
                    os=os,
                    device_type=device,
                    visible_ms=event.visible_ms,
                    scroll_depth=event.scroll_depth,
                    target=event.target,
                    properties=event.props,
                )
            )
        )
    ads = []
    for view in visit.ads:
        kinds = (
            ["impression"]
            + (["viewable"] if view.viewable else [])
            + (["click"] if view.clicked else [])
        )
        for offset, kind in enumerate(kinds):
            moment = _ms(view.at + timedelta(seconds=offset))
            ads.append(
                encoder.encode(
                    AdRow(
                        event_id=ad_event_id(
                            site_id=site_id, impression=view.impression, kind=kind
                        ),
                        impression_id=view.impression,
                        site_id=site_id,
                        timestamp=moment,
                        received_at=moment,
                        event_type=kind,
                        visitor_id=visit.visitor,
                        consent_state="none",
                        campaign_id=view.campaign,
                        ad_id=view.ad,
                        placement_id=view.placement,
                        retention_days=retention_days,
                        country=visit.country,
                        region=visit.region,
                        city=visit.city,
                        device_type=device,
                    )
                )
            )
    return pages, ads


def bulk_load(
    *,
    site_id: str,
    retention_days: int,
    visits: Iterator[Visit],
    app_devices: Iterable[AppDevice] = (),
    batch_rows: int = 50_000,
    progress: Callable[[int], None] = lambda visits: None,
) -> tuple[int, int]:
    """Insert the visits' rows and the app devices' update events in large batches; (page
    rows, ad rows)."""
    pages = [
        row for device in app_devices for row in app_update_rows(site_id, retention_days, device)
    ]
    ads: list[bytes] = []
    totals = [0, 0]
    for visit in visits:
        page_rows, ad_rows = bulk_rows(site_id, retention_days, visit)
        pages += page_rows
        ads += ad_rows
        progress(1)
        if len(pages) >= batch_rows:
            insert_rows("page_events", pages)
            totals[0] += len(pages)
            pages = []
        if len(ads) >= batch_rows:
            insert_rows("ad_events", ads)
            totals[1] += len(ads)
            ads = []
    insert_rows("page_events", pages)
    insert_rows("ad_events", ads)
    return totals[0] + len(pages), totals[1] + len(ads)


def send_through_ingest(
    *,
    site_id: str,
    visits: Iterator[Visit],
    app_devices: Iterable[AppDevice] = (),
    progress: Callable[[int], None] = lambda visits: None,
) -> dict[str, int]:
    """Every visit as the tracker would send it: a /collect batch (cookieless visitor from its
    IP and user agent), and each ad event as a confirmed /ad-event; then each app device's
    update events as the app's /collect batches. Statuses are counted."""
    statuses: dict[str, int] = {}

    async def send(path: str, body: dict[str, object], visit: Visit | AppDevice) -> None:
        request = TrackingRequest(
            method="POST",
            path=path,
            query={},
            body=json.dumps(body).encode(),
            remote_addr=visit.ip,
            headers={"content-type": "text/plain", "user-agent": visit.device[4]},
        )
        endpoints = AD_ENDPOINTS if path in AD_ENDPOINTS else TRACKING_ENDPOINTS
        response = await dispatch(request, endpoints)
        statuses[f"{path} {response.status}"] = statuses.get(f"{path} {response.status}", 0) + 1

    async def run() -> None:
        for visit in visits:
            now_ms = int(datetime.now(UTC).timestamp() * 1000)
            events = tracker_events(visit)
            for start in range(0, len(events), 100):
                await send(
                    "/collect",
                    {"site": site_id, "sent_at": now_ms, "events": events[start : start + 100]},
                    visit,
                )
            for view in visit.ads:
                kinds = (
                    ["impression"]
                    + (["viewable"] if view.viewable else [])
                    + (["click"] if view.clicked else [])
                )
                # The generator stands for the ad server that delivered the ad: it signs the
                # delivery as serving would, so the events pass /ad-event's checks.
                token = sign_delivery(
                    Delivery(
                        impression=view.impression,
                        site=site_id,
                        campaign=view.campaign,
                        ad=view.ad,
                        placement=view.placement,
                        creative="",
                    )
                )
                for kind in kinds:
                    await send(
                        "/ad-event",
                        {
                            "type": kind,
                            "impression_token": token,
                            "ts": int(view.at.timestamp() * 1000),
                        },
                        visit,
                    )
            progress(1)
        for device in app_devices:
            now_ms = int(datetime.now(UTC).timestamp() * 1000)
            for start in range(0, len(device.events), 100):
                batch = device.events[start : start + 100]
                body = {"site": site_id, "app": APP, "sent_at": now_ms, "events": batch}
                await send("/collect", body, device)

    # async_to_sync: database calls of the endpoints run in this thread, on its connection.
    async_to_sync(run)()
    return statuses


def expected_ctr(visits: list[Visit]) -> float:
    """The click-through rate the click model implies for these visits' impressions."""
    probabilities = [view.probability for visit in visits for view in visit.ads]
    return sum(probabilities) / len(probabilities) if probabilities else math.nan
