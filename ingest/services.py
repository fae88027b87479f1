"""Accepting events: identity, clock-skew correction, the age limit and enrichment into rows.

The endpoints (ingest.endpoints, and the ad server's ads.endpoints) decode and authenticate;
these functions turn what was sent plus what the request tells (IP, user agent, time of
arrival) into the rows of events.rows, and never keep the IP.

Event time: an event's ``ts`` is moved to the server's clock by the sender's clock offset (the
batch's ``sent_at``); an event from the future is dated to its arrival, and an event older than
events.tables.DEDUP_WINDOW_DAYS is refused (``EventTooOld``): its id is remembered only that
long (events.dedup), so a retry of it arriving later would be stored twice.

Entry points: request_facts, visitor_identify (and its pure part visitor_identity),
page_rows_from_batch, ad_row_from_event, event_time_ms.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from urllib.parse import urlsplit

import msgspec

from events.ids import ad_event_id, new_event_id
from events.rows import AdRow, PageRow, clickhouse_time, encoder
from events.schemas import (
    AdEventPayload,
    Consent,
    CustomEvent,
    Download,
    Engagement,
    Envelope,
    Outbound,
    UpdateEvent,
    VastError,
    event_type,
    page_event_decoder,
    update_payload,
)
from events.tables import DEDUP_WINDOW_DAYS
from ingest import geo, identity
from ingest.enrichment import (
    UserAgentInfo,
    classify_referrer,
    client_ip,
    describe_user_agent,
    utm_parameters,
)
from ingest.hot_settings import HOT
from ingest.http import Refusal, TrackingRequest, in_database
from ingest.identity import cookieless_visitor_id, token_is_valid
from ingest.selectors import SiteConfig

# Events may be queued on a device (offline apps, retries), but not for longer than event ids
# are remembered for deduplication.
MAX_EVENT_AGE_MS = DEDUP_WINDOW_DAYS * 24 * 3600 * 1000
TOO_OLD = f"older than {DEDUP_WINDOW_DAYS} days: not accepted"
# Release reports are per app: an update event of no app could be counted in none.
UPDATE_WITHOUT_APP = "update events need the batch's `app` (the app id) - at `$.app`"


class EventTooOld(Exception):
    """An event dated more than DEDUP_WINDOW_DAYS before its arrival."""

    def __init__(self) -> None:
        super().__init__(TOO_OLD)


class InvalidToken(Exception):
    """A browser id was sent with a token that does not verify."""


class RequestFacts(msgspec.Struct, frozen=True):
    """What the HTTP request itself says about the visitor (header names in lower case); the
    IP is used, never stored."""

    ip: str
    user_agent: str
    agent: UserAgentInfo
    country: str
    region: str
    city: str
    received_ms: int
    do_not_track: bool

    @classmethod
    def from_headers(
        cls, *, headers: Mapping[str, str], remote_addr: str, trusted_proxies: int
    ) -> RequestFacts:
        ip = client_ip(
            remote_addr=remote_addr,
            forwarded_for=headers.get("x-forwarded-for", ""),
            trusted_proxies=trusted_proxies,
        )
        user_agent = headers.get("user-agent", "")[:512]
        location = geo.locate(ip)
        return cls(
            ip=ip,
            user_agent=user_agent,
            agent=describe_user_agent(user_agent),
            country=location.country,
            region=location.region,
            city=location.city,
            received_ms=int(time.time() * 1000),
            do_not_track=headers.get("dnt") == "1" or headers.get("sec-gpc") == "1",
        )

    @property
    def day(self) -> date:
        return _utc_day(self.received_ms // 86_400_000)


@lru_cache(maxsize=4)
def _utc_day(days_since_epoch: int) -> date:
    # Asked twice per request (the salt, the visitor hash): made once per day.
    return datetime.fromtimestamp(days_since_epoch * 86_400, UTC).date()


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    error: str


_CONSENT_STATES = {
    (False, False): "none",
    (True, False): "analytics",
    (False, True): "ads",
    (True, True): "analytics+ads",
}


def consent_state(consent: Consent) -> str:
    return _CONSENT_STATES[consent.analytics, consent.ads]


def request_facts(*, request: TrackingRequest) -> RequestFacts:
    facts = RequestFacts.from_headers(
        headers=request.headers,
        remote_addr=request.remote_addr,
        trusted_proxies=HOT.INGEST_TRUSTED_PROXIES,
    )
    # TEST ONLY (settings.GEO_TEST_COUNTRY_HEADER, never set from the environment): browser
    # tests on 127.0.0.1 choose the visitor's country, which loopback does not have (and so no
    # region or city either).
    test_header = HOT.GEO_TEST_COUNTRY_HEADER
    if test_header and request.headers.get(test_header):
        facts = msgspec.structs.replace(
            facts, country=request.headers[test_header][:2].upper(), region="", city=""
        )
    return facts


def visitor_identity(
    *, site: SiteConfig, bid: str | None, token: str | None, consent: Consent, facts: RequestFacts
) -> str:
    """The browser id when analytics consent was given and its token verifies; otherwise a
    cookieless hash that changes every day. A bid with a bad token is refused, not downgraded,
    so a tracker with a stale token learns it must call /init again. Ads consent resting on a
    bid (an "ads only" grant: ads.serving personalises by it) needs the bid's token as well,
    though the id stays the cookieless one (counts follow analytics consent only)."""
    if bid is not None and (consent.analytics or consent.ads):
        if token is None or not token_is_valid(
            secrets_in_force=list(site.secrets), bid=bid, site_id=site.public_id, token=token
        ):
            raise InvalidToken
        if consent.analytics:
            return bid
    return cookieless_visitor_id(
        site_id=site.public_id, ip=facts.ip, user_agent=facts.user_agent, day=facts.day
    )


async def visitor_identify(
    *,
    site: SiteConfig,
    bid: str | None,
    token: str | None,
    consent: Consent,
    facts: RequestFacts,
) -> str:
    """``visitor_identity`` from the event loop: the first cookieless visitor of the day reads
    (or makes) the day's salt in the database; a bad token is a 403."""
    if not identity.salt_is_cached(facts.day):
        await in_database(identity.salt_for)(facts.day)
    try:
        return visitor_identity(site=site, bid=bid, token=token, consent=consent, facts=facts)
    except InvalidToken:
        raise Refusal(403, "invalid or expired token: call /init for a new one") from None


def event_time_ms(*, sent_ms: int | None, sent_at: int | None, received_ms: int) -> int:
    """Event time on the server's clock: shifted by the sender's clock offset (from the batch's
    ``sent_at``), never later than the arrival. EventTooOld if that is more than
    MAX_EVENT_AGE_MS (DEDUP_WINDOW_DAYS) before the arrival."""
    if sent_ms is None:
        return received_ms
    shifted = sent_ms + (received_ms - sent_at if sent_at is not None else 0)
    if shifted < received_ms - MAX_EVENT_AGE_MS:
        raise EventTooOld
    return min(shifted, received_ms)


@lru_cache(maxsize=8192)
def page_url(url: str) -> tuple[str, str, Mapping[str, str]] | None:
    """(host, path, UTM tags) of a page URL, None unless it is absolute. Cached: a site's pages
    and landing URLs repeat, and splitting one costs more than the rest of its row."""
    parts = urlsplit(url)
    if not parts.scheme or not (parts.netloc or parts.path):
        return None
    return (parts.hostname or "")[:253], (parts.path or "/")[:1024], utm_parameters(parts.query)


def page_rows_from_batch(
    *, envelope: Envelope, site: SiteConfig, visitor_id: str, facts: RequestFacts
) -> tuple[list[bytes], list[Rejection]]:
    """Encoded rows for the valid events, and the reason for each invalid one."""
    rows: list[bytes] = []
    rejections: list[Rejection] = []
    received = clickhouse_time(facts.received_ms)
    consent = consent_state(envelope.consent)
    agent = facts.agent
    for index, raw in enumerate(envelope.events):
        try:
            event = page_event_decoder.decode(raw)
        except msgspec.DecodeError as error:
            rejections.append(Rejection(index, str(error)))
            continue
        url = event.url
        if isinstance(event, UpdateEvent):
            if not envelope.app:
                rejections.append(Rejection(index, UPDATE_WITHOUT_APP))
                continue
            url = url or f"app://{envelope.app}/"
        page = page_url(url)
        if page is None:
            rejections.append(Rejection(index, "Expected an absolute URL - at `$.url`"))
            continue
        hostname, pathname, utm = page
        source, medium = classify_referrer(referrer=event.referrer, page_host=hostname, utm=utm)
        try:
            moment = event_time_ms(
                sent_ms=event.ts, sent_at=envelope.sent_at, received_ms=facts.received_ms
            )
        except EventTooOld:
            rejections.append(Rejection(index, TOO_OLD))
            continue
        row = PageRow(
            event_id=new_event_id() if event.id is None else str(event.id),
            site_id=site.public_id,
            timestamp=received if moment == facts.received_ms else clickhouse_time(moment),
            received_at=received,
            event_type=event_type(event),
            visitor_id=visitor_id,
            consent_state=consent,
            pathname=pathname,
            url=url,
            retention_days=site.retention_days,
            app_id=envelope.app or "",
            hostname=hostname,
            referrer=event.referrer,
            referrer_source=source,
            referrer_medium=medium,
            utm_source=utm.get("utm_source", ""),
            utm_medium=utm.get("utm_medium", ""),
            utm_campaign=utm.get("utm_campaign", ""),
            utm_term=utm.get("utm_term", ""),
            utm_content=utm.get("utm_content", ""),
            country=facts.country,
            region=facts.region,
            city=facts.city,
            browser=agent.browser,
            browser_version=agent.browser_version,
            os=agent.os,
            os_version=agent.os_version,
            device_type=agent.device_type,
            is_bot=int(agent.is_bot),
            bot_reason=agent.bot_reason,
        )
        if isinstance(event, CustomEvent):
            row.event_name = event.name
            row.properties = {key: str(value) for key, value in event.props.items()}
        elif isinstance(event, Engagement):
            row.visible_ms, row.scroll_depth = event.visible_ms, event.scroll_depth
        elif isinstance(event, Outbound | Download):
            row.target = event.target
        elif isinstance(event, UpdateEvent):
            row.properties = update_payload(event)
            row.os = event.os or row.os
            row.os_version = event.os_version or row.os_version
        rows.append(encoder.encode(row))
    return rows, rejections


def ad_row_from_event(
    *, event: AdEventPayload, site: SiteConfig, visitor_id: str, facts: RequestFacts
) -> tuple[str, bytes]:
    """The event id and the encoded row. The id is derived from (site, impression, type), never
    taken from the client, so a retried, replayed or resent event is the same row and counts
    once. EventTooOld for an event sent with a ``ts`` older than MAX_EVENT_AGE_MS."""
    kind = event_type(event)
    event_id = ad_event_id(site_id=site.public_id, impression=event.impression, kind=kind)
    moment = event_time_ms(sent_ms=event.ts, sent_at=None, received_ms=facts.received_ms)
    row = AdRow(
        event_id=event_id,
        impression_id=event.impression,
        site_id=site.public_id,
        timestamp=clickhouse_time(moment),
        received_at=clickhouse_time(facts.received_ms),
        event_type=kind,
        visitor_id=visitor_id,
        consent_state=consent_state(event.consent),
        campaign_id=event.campaign,
        ad_id=event.ad,
        retention_days=site.retention_days,
        placement_id=event.placement,
        creative_type=event.creative,
        app_id=event.app or "",
        pathname=(urlsplit(event.url).path or "/")[:1024] if event.url else "",
        country=facts.country,
        region=facts.region,
        city=facts.city,
        device_type=facts.agent.device_type,
        is_bot=int(facts.agent.is_bot),
        bot_reason=facts.agent.bot_reason,
        error_code=event.code if isinstance(event, VastError) else 0,
    )
    return event_id, encoder.encode(row)
