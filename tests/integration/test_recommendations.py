"""Recommendations end to end against the real services (issue 16): page events through /collect
into ClickHouse, the popular-pages job into Redis, visits through /recs/signal and ad events
through /ad-event into the visitor's signals, and /recs/items leaving out what the visitor saw,
with and without consent, for two sites of two organizations."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any, cast

import pytest
import redis
import redis.asyncio.client

from ingest.selectors import forget_site_configs
from naboria import redis_client
from recs import keys
from recs.selectors import forget_popular, popular_items, recommended_items
from recs.services import popular_pages_refresh, popular_pages_refresh_all
from sites.models import Site
from tests.factories import OrganizationFactory, SiteFactory
from tests.integration.test_collect_direct import rows
from tests.tracking_client import TrackingClient, delivered_ad_event
from tests.unit.test_enrichment import GOOGLEBOT, WINDOWS_CHROME

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.clickhouse,
    pytest.mark.django_db,
    pytest.mark.usefixtures("clickhouse_schema", "direct_path", "recs_redis"),
]
SHOP = "https://shop.example"
NEWS = "https://news.example"
DAY = 86_400


def recs_site(domain: str, **fields: Any) -> Site:
    """A site of an organization of its own, with recommendations on."""
    site = cast(
        Site,
        SiteFactory(
            organization=OrganizationFactory(),
            allowed_domains=[domain],
            recommendations_enabled=True,
            **fields,
        ),
    )
    forget_site_configs()
    return site


@pytest.fixture
def shop() -> Site:
    return recs_site("shop.example")


@pytest.fixture
def news() -> Site:
    return recs_site("news.example")


def client(user_agent: str = WINDOWS_CHROME, ip: str = "81.2.69.142") -> TrackingClient:
    return TrackingClient(HTTP_USER_AGENT=user_agent, REMOTE_ADDR=ip)


def visitor(site: Site) -> dict[str, Any]:
    """A browser id and its token from /init, with analytics consent claimed (the suite's
    sites trust what their pages claim: a CMP of their own)."""
    answer = client().get(f"/init?site={site.public_id}").json()
    return {"bid": answer["bid"], "token": answer["token"]}


def pageviews(site: Site, origin: str, paths: list[str], *, who: dict[str, Any]) -> None:
    events = [
        # Each sent twice with its id: a retry must not count twice.
        {"type": "pageview", "url": f"{origin}{path}", "id": str(event_id)}
        for path in paths
        for event_id in [uuid.uuid5(uuid.NAMESPACE_URL, who["bid"] + path)] * 2
    ]
    body = {"site": site.public_id, "events": events, "consent": {"analytics": True}, **who}
    answer = client().post("/collect", json.dumps(body), HTTP_ORIGIN=origin)
    assert answer.status_code == 202, answer.content


def items(site: Site, url: str, **params: str) -> Any:
    answer = client().get("/recs/items", {"site": site.public_id, "url": url, **params})
    assert answer.status_code == 200, answer.content
    assert answer["cache-control"] == "private, no-store"
    return answer.json()


def paths_of(answer: Any) -> list[str]:
    return [item["path"] for item in answer["items"]]


def signal(site: Site, who: dict[str, Any], url: str, **fields: Any) -> Any:
    body = {"site": site.public_id, "type": "visit", "url": url, **who, **fields}
    body.setdefault("consent", {"analytics": True})
    return client().post("/recs/signal", json.dumps(body), content_type="text/plain")


@pytest.fixture
def traffic(shop: Site, news: Site) -> dict[str, Any]:
    """Three visitors on the shop (/boots by all three, /socks by two, /hats by one, each page
    twice by the same visitor, and a bot's many views of /bot-bait) and one on the news."""
    people = [visitor(shop) for _ in range(3)]
    pageviews(shop, SHOP, ["/boots", "/socks", "/hats"], who=people[0])
    pageviews(shop, SHOP, ["/boots", "/socks", "/boots"], who=people[1])
    pageviews(shop, SHOP, ["/boots"], who=people[2])
    bot = {"site": shop.public_id, "events": [{"type": "pageview", "url": f"{SHOP}/bot-bait"}]}
    for number in range(5):
        answer = client(GOOGLEBOT, ip=f"66.249.66.{number}").post("/collect", json.dumps(bot))
        assert answer.status_code == 202
    pageviews(news, NEWS, ["/politics"], who=visitor(news))
    rows("SELECT 1")  # flushes the direct path's batch into ClickHouse
    return {"people": people}


def test_popular_pages_by_distinct_people_leave_out_the_current_page(shop, news, traffic):
    assert popular_pages_refresh_all() == 2
    assert paths_of(items(shop, f"{SHOP}/hats")) == ["/boots", "/socks"]
    answer = items(shop, f"{SHOP}/?q=1")
    assert answer == {
        "items": [
            {"path": "/boots", "url": f"{SHOP}/boots", "title": "/boots"},
            {"path": "/socks", "url": f"{SHOP}/socks", "title": "/socks"},
            {"path": "/hats", "url": f"{SHOP}/hats", "title": "/hats"},
        ],
        "personal": False,
    }
    assert paths_of(items(shop, f"{SHOP}/", limit="1")) == ["/boots"]
    # Tenancy: each site's list holds its own pages only.
    assert paths_of(items(news, f"{NEWS}/")) == ["/politics"]
    # Popular lists expire if the job stops, and are bounded by their size.
    assert 0 < redis_client.sync_client().ttl(keys.popular(shop.public_id)) <= DAY


def test_a_visitor_with_consent_is_not_recommended_what_they_saw(shop, news, traffic):
    first = traffic["people"][0]
    assert signal(shop, first, f"{SHOP}/socks?colour=red", title="  Warm\n socks ").json() == {
        "stored": True
    }
    popular_pages_refresh(site_id=shop.public_id)
    forget_popular()
    personal = {**first, "consent": "analytics"}
    answer = items(shop, f"{SHOP}/boots", **personal)
    assert answer == {
        "items": [{"path": "/hats", "url": f"{SHOP}/hats", "title": "/hats"}],
        "personal": True,
    }
    # The page's title (reported with a verified token) names the page for everybody.
    assert items(shop, f"{SHOP}/boots")["items"][0] == {
        "path": "/socks",
        "url": f"{SHOP}/socks",
        "title": "Warm socks",
    }
    # Signals expire: visits after 7 days.
    ttl = redis_client.sync_client().ttl(keys.visits(shop.public_id, first["bid"]))
    assert 7 * DAY - 60 < ttl <= 7 * DAY
    # Without the consent claim, with a token that does not verify, or for another site, the
    # visitor's signals are not used: popular items only.
    for params in ({**first}, {**personal, "token": "0" * 64}):
        answer = items(shop, f"{SHOP}/boots", **params)
        assert (paths_of(answer), answer["personal"]) == (["/socks", "/hats"], False)
    other_site = visitor(news)
    assert signal(news, other_site, f"{NEWS}/politics").json() == {"stored": True}
    assert paths_of(items(shop, f"{SHOP}/boots", **personal)) == ["/hats"]


def test_signals_need_consent_and_a_valid_token(shop, traffic):
    someone = traffic["people"][1]
    visits = keys.visits(shop.public_id, someone["bid"])
    answer = signal(shop, someone, f"{SHOP}/hats", consent={"analytics": False, "ads": True})
    assert answer.status_code == 200
    assert answer.json() == {"stored": False, "reason": "no analytics consent"}
    answer = signal(shop, {**someone, "token": "0" * 64}, f"{SHOP}/hats")
    assert (answer.status_code, answer.json()["error"]) == (
        403,
        "invalid or expired token: call /init for a new one",
    )
    dnt = TrackingClient(HTTP_USER_AGENT=WINDOWS_CHROME, HTTP_SEC_GPC="1").post(
        "/recs/signal",
        json.dumps(
            {"site": shop.public_id, "type": "visit", "url": f"{SHOP}/hats", **someone}
            | {"consent": {"analytics": True}}
        ),
    )
    assert dnt.json() == {"stored": False, "reason": "do-not-track"}
    assert redis_client.sync_client().exists(visits) == 0


def test_a_site_with_the_banner_uses_signals_only_as_far_as_the_decision_granted(
    site_with_banner,
):
    site_with_banner.allowed_domains = ["shop.example"]
    site_with_banner.recommendations_enabled = True
    site_with_banner.save()
    forget_site_configs()
    decide = {"site": site_with_banner.public_id, "version": 1, "denied": ["analytics"]}
    grant = client().post("/consent", json.dumps({**decide, "granted": ["ads", "necessary"]}))
    assert grant.status_code == 201
    who = {"bid": grant.json()["bid"], "token": grant.json()["token"]}
    # The page claims analytics; the recorded decision refused it.
    assert signal(site_with_banner, who, f"{SHOP}/boots").json()["stored"] is False
    answer = items(site_with_banner, f"{SHOP}/", **who, consent="analytics")
    assert answer["personal"] is False


def test_ad_impressions_and_clicks_are_kept_from_verified_ad_events(shop):
    someone = visitor(shop)
    impression = f"imp-{uuid.uuid4().hex[:8]}"
    for kind in ("impression", "click", "click"):  # a retried click is one signal
        body = delivered_ad_event(
            site=shop.public_id,
            impression=impression,
            kind=kind,
            # Ids no real campaign of the suite has: the impression is counted in Redis.
            campaign=990_007,
            ad=990_070,
            consent={"ads": True},
            **someone,
        )
        answer = client().post("/ad-event", json.dumps(body))
        assert answer.status_code == 200, answer.content
    redis = redis_client.sync_client()
    for kind in ("impression", "click"):
        key = keys.ad_signals(shop.public_id, someone["bid"], kind)
        assert [member.decode() for member in redis.zrange(key, 0, -1)] == [
            f"990007:990070:{impression}"
        ]
        assert 30 * DAY - 60 < redis.ttl(key) <= 30 * DAY
    # The client cannot send them itself.
    answer = signal(shop, someone, f"{SHOP}/", type="click")
    assert (answer.status_code, answer.json()["error"]) == (
        400,
        "ad impressions and clicks are recorded by /ad-event, not sent here",
    )
    # Without ads consent, or on a site without recommendations, nothing is kept.
    anonymous = visitor(shop)
    body = delivered_ad_event(site=shop.public_id, impression="imp-x", **anonymous)
    assert client().post("/ad-event", json.dumps(body)).status_code == 200
    Site.objects.filter(pk=shop.pk).update(recommendations_enabled=False)
    forget_site_configs()
    later = delivered_ad_event(
        site=shop.public_id, impression="imp-y", consent={"ads": True}, **anonymous
    )
    assert client().post("/ad-event", json.dumps(later)).status_code == 200
    assert redis.exists(keys.ad_signals(shop.public_id, anonymous["bid"], "impression")) == 0


def test_signals_are_bounded(shop):
    someone = visitor(shop)
    for number in range(keys.MAX_VISITS + 5):
        assert signal(shop, someone, f"{SHOP}/p{number}").json()["stored"] is True
    visited = redis_client.sync_client().zrange(keys.visits(shop.public_id, someone["bid"]), 0, -1)
    assert len(visited) == keys.MAX_VISITS
    assert b"/p0" not in visited  # the oldest went first
    assert f"/p{keys.MAX_VISITS + 4}".encode() in visited


@pytest.mark.parametrize(
    ("query", "status", "error"),
    [
        ("url=https://shop.example/", 400, "site must be 1-64 characters"),
        ("site=SITE", 400, "url must be an absolute http(s) URL of the page"),
        ("site=SITE&url=/boots", 400, "url must be an absolute http(s) URL of the page"),
        ("site=SITE&url=https://news.example/", 400, "url: 'news.example' is not an allowed"),
        ("site=SITE&url=https://shop.example:99999/", 400, "url is not a valid URL"),
        ("site=SITE&url=https://shop.example/&limit=0", 400, "limit must be a whole number"),
        ("site=SITE&url=https://shop.example/&limit=x", 400, "limit must be a whole number"),
        ("site=SITE&url=https://shop.example/&consent=all", 400, "consent must list purposes"),
        ("site=SITE&url=https://shop.example/&bid=a%20b", 400, "bid must be 1-64 characters"),
        ("site=nosuchsite&url=https://shop.example/", 404, "unknown site 'nosuchsite'"),
    ],
)
def test_bad_item_requests_are_refused_with_a_message(shop, query, status, error):
    answer = client().request("GET", "/recs/items", query=query.replace("SITE", shop.public_id))
    assert answer.status_code == status
    assert answer.json()["error"].startswith(error)


def test_bad_signals_and_disabled_sites_are_refused_with_a_message(shop):
    someone = visitor(shop)
    refusals = [
        (signal(shop, someone, "https://news.example/x"), 400, "url: 'news.example'"),
        (signal(shop, someone, f"{SHOP}/", type="purchase"), 400, "type must be visit"),
        (signal(shop, someone, f"{SHOP}/", extra=1), 400, "malformed signal"),
        (client().post("/recs/signal", "{"), 400, "malformed signal"),
        (client().get("/recs/signal"), 405, "use POST"),
        (
            client().get(
                "/recs/items",
                {"site": shop.public_id, "url": f"{SHOP}/"},
                **{"HTTP_ORIGIN": "https://evil.example"},
            ),
            403,
            "origin 'evil.example' is not an allowed domain",
        ),
    ]
    off = cast(Site, SiteFactory(allowed_domains=["shop.example"]))
    refusals.append(
        (client().get("/recs/items", {"site": off.public_id, "url": f"{SHOP}/"}), 403, "")
    )
    for answer, status, error in refusals:
        assert answer.status_code == status, answer.content
        assert answer.json()["error"].startswith(error)
    assert client().get("/recs/items", {"site": off.public_id, "url": f"{SHOP}/"}).json() == {
        "error": "recommendations are disabled for this site"
    }


def test_a_decision_taking_consent_back_deletes_the_signals_it_allowed(
    site_with_banner, django_capture_on_commit_callbacks
):
    site_with_banner.allowed_domains = ["shop.example"]
    site_with_banner.recommendations_enabled = True
    site_with_banner.save()
    forget_site_configs()
    decide = {"site": site_with_banner.public_id, "version": 1}
    everything = {**decide, "granted": ["necessary", "analytics", "ads"], "denied": []}
    grant = client().post("/consent", json.dumps(everything)).json()
    who = {"bid": grant["bid"], "token": grant["token"]}
    assert signal(site_with_banner, who, f"{SHOP}/boots").json() == {"stored": True}
    body = delivered_ad_event(
        site=site_with_banner.public_id,
        impression="imp-w",
        campaign=990_008,
        consent={"analytics": True, "ads": True},
        **who,
    )
    assert client().post("/ad-event", json.dumps(body)).status_code == 200
    redis = redis_client.sync_client()
    visits = keys.visits(site_with_banner.public_id, who["bid"])
    impressions = keys.ad_signals(site_with_banner.public_id, who["bid"], "impression")
    assert (redis.exists(visits), redis.exists(impressions)) == (1, 1)

    # Withdrawing ads keeps the visits, which rest on analytics; then analytics goes too.
    ads_back = {**decide, "granted": ["necessary", "analytics"], "denied": ["ads"], **who}
    # (Once the decision is committed: the test's transaction never is.)
    with django_capture_on_commit_callbacks(execute=True):
        assert client().post("/consent", json.dumps(ads_back)).status_code == 201
    assert (redis.exists(visits), redis.exists(impressions)) == (1, 0)
    nothing = {**decide, "granted": ["necessary"], "denied": ["analytics", "ads"], **who}
    with django_capture_on_commit_callbacks(execute=True):
        assert client().post("/consent", json.dumps(nothing)).status_code == 201
    assert redis.exists(visits) == 0


def test_titles_are_bounded_to_the_popular_pages_beyond_their_limit(
    shop, news, traffic, monkeypatch
):
    someone = traffic["people"][0]
    for path in ("/boots", "/gloves", "/scarves"):
        answer = signal(shop, someone, f"{SHOP}{path}", title=path[1:].title())
        assert answer.json() == {"stored": True}
    redis = redis_client.sync_client()
    popular_pages_refresh(site_id=shop.public_id)
    assert redis.hlen(keys.titles(shop.public_id)) == 3  # within the limit: all kept
    monkeypatch.setattr(keys, "MAX_TITLES", 2)
    popular_pages_refresh(site_id=shop.public_id)
    # Over it: only the titles of popular pages stay (/gloves and /scarves were never viewed).
    assert redis.hgetall(keys.titles(shop.public_id)) == {b"/boots": b"Boots"}
    forget_popular()
    assert items(shop, f"{SHOP}/")["items"][0]["title"] == "Boots"


def test_lookups_made_together_share_one_pipeline_and_keep_each_visitors_answer(monkeypatch):
    """Requests that look up their visitors' visits in the same turn of the event loop send
    them to Redis as one pipeline; each request still gets its own visitor's answer, a lone
    lookup goes alone, and a Redis failure reaches every request waiting on it."""
    site = "lookup-site"
    pages = [f"/p{number}" for number in range(12)]
    popular = [{"path": path, "url": f"{SHOP}{path}", "title": path} for path in pages]
    sync = redis_client.sync_client()
    sync.set(keys.popular(site), json.dumps(popular))
    # Visitor n saw the first n pages: their answer starts at page n.
    for number in range(1, 10):
        sync.zadd(keys.visits(site, f"v{number}"), dict.fromkeys(pages[:number], 1))

    async def lookups(visitors: list[str]) -> tuple[list[Any], int]:
        client = redis_client.async_client()
        pipelines = 0
        make_pipeline = client.pipeline

        def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal pipelines
            pipelines += 1
            return make_pipeline(*args, **kwargs)

        monkeypatch.setattr(client, "pipeline", counted)
        # The site's popular list read first (then cached in process), so that every request
        # reaches its lookup in the same turn of the loop: with the list still to read, each
        # would wait for its own GET's answer, and those may arrive in different turns.
        await popular_items(site_id=site)
        answers = await asyncio.gather(
            *(
                recommended_items(site_id=site, current_path="/p11", visitor=who, limit=2)
                for who in visitors
            ),
            return_exceptions=True,
        )
        return answers, pipelines

    visitors = [f"v{number}" for number in range(1, 10)]
    answers, pipelines = asyncio.run(lookups(visitors))
    assert pipelines == 1
    assert [[item["path"] for item in answer] for answer in answers] == [
        [f"/p{number}", f"/p{number + 1}"] for number in range(1, 10)
    ]
    answers, pipelines = asyncio.run(lookups(["v3"]))
    assert (pipelines, [item["path"] for item in answers[0]]) == (0, ["/p3", "/p4"])

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise redis.exceptions.ConnectionError("Redis went away")

    async def failing_lookups() -> list[Any]:
        monkeypatch.setattr(redis_client.async_client(), "zmscore", broken)
        monkeypatch.setattr(redis.asyncio.client.Pipeline, "execute", broken)
        return await asyncio.gather(
            *(
                recommended_items(site_id=site, current_path="/p11", visitor=who, limit=2)
                for who in visitors[:3]
            ),
            return_exceptions=True,
        )

    assert all(
        isinstance(answer, redis.exceptions.ConnectionError)
        for answer in asyncio.run(failing_lookups())
    )
