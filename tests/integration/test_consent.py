"""Consent decisions end to end: POST /consent → PostgreSQL record (the proof) → ClickHouse
mirror, the server re-checking the consent pages claim and the banner's versions (the proof
itself: snapshots, refusals, export, retention, in test_consent_proof)."""

from __future__ import annotations

import json

import pytest

from consent.models import ConsentPurpose, ConsentRecord
from consent.services import consent_banner_refresh_version
from ingest import identity
from ingest.selectors import forget_site_configs
from sites.selectors import site_secrets_valid
from tests.integration.test_collect_direct import VISITOR_IP, post, rows

pytestmark = [
    pytest.mark.clickhouse,
    pytest.mark.django_db,
    pytest.mark.usefixtures("clickhouse_schema", "direct_path"),
]
ORIGIN = "https://shop.example"


@pytest.fixture
def shop(site_with_banner):
    site_with_banner.allowed_domains = ["shop.example"]
    site_with_banner.save()
    return site_with_banner


def decide(site, granted, denied, **extra):
    body = {"site": site.public_id, "version": 1, "granted": granted, "denied": denied, **extra}
    return post("/consent", body, origin=ORIGIN)


def pageview(site, *, consent, bid=None, token=None):
    body = {
        "site": site.public_id,
        "consent": consent,
        "events": [{"type": "pageview", "url": "https://shop.example/"}],
    }
    if bid:
        body.update(bid=bid, token=token)
    assert post("/collect", body, origin=ORIGIN).status_code == 202


def stored(site):
    return rows(
        "SELECT visitor_id, consent_state FROM page_events WHERE site_id = {s:String} "
        "ORDER BY received_at",
        s=site.public_id,
    )


def test_accepting_records_the_browser_id_and_returns_a_token(shop):
    answer = decide(shop, ["necessary", "analytics", "ads"], [], tc="", lang="fr")
    assert answer.status_code == 201
    body = answer.json()
    assert body["recorded"] is True
    assert len(body["bid"]) == 32
    assert identity.token_is_valid(
        secrets_in_force=site_secrets_valid(site=shop),
        bid=body["bid"],
        site_id=shop.public_id,
        token=body["token"],
    )
    record = ConsentRecord.objects.get(site=shop)
    assert (record.visitor_id, record.visitor_id_kind) == (body["bid"], "browser")
    assert (record.granted, record.denied) == (["ads", "analytics", "necessary"], [])
    assert (record.banner_version, record.language, record.user_agent_family) == (1, "fr", "Chrome")
    assert record.country == "GB"
    # No field of the record holds the IP address.
    assert VISITOR_IP not in json.dumps(
        list(ConsentRecord.objects.values().get().values()), default=str
    )


def test_refusing_records_a_hashed_id_and_issues_no_browser_id(shop):
    answer = decide(shop, ["necessary"], ["analytics", "ads"])
    assert answer.status_code == 201
    assert "bid" not in answer.json()
    record = ConsentRecord.objects.get(site=shop)
    assert (record.visitor_id_kind, len(record.visitor_id)) == ("hashed", 32)
    assert record.denied == ["ads", "analytics"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"granted": ["analytics", "spying"], "denied": []}, 400, "unknown purposes"),
        ({"granted": ["analytics"], "denied": ["analytics"]}, 400, "both granted and denied"),
        ({"granted": "analytics", "denied": []}, 400, "malformed consent decision"),
        ({"granted": [], "denied": [], "version": 0}, 400, "malformed consent decision"),
        ({"granted": [], "denied": [], "tc": "<script>"}, 400, "malformed consent decision"),
        ({"granted": [], "denied": [], "site": "nosuchsite"}, 404, "unknown site"),
    ],
)
def test_bad_decisions_get_a_clear_4xx_and_no_record(shop, body, status, message):
    answer = post("/consent", {"site": shop.public_id, "version": 1, **body}, origin=ORIGIN)
    assert answer.status_code == status
    assert message in answer.json()["error"]
    assert not ConsentRecord.objects.exists()


def test_decisions_from_other_origins_are_refused(shop):
    body = {"site": shop.public_id, "version": 1, "granted": [], "denied": []}
    assert post("/consent", body, origin="https://evil.example").status_code == 403


def test_server_obeys_the_recorded_decision_whatever_the_page_claims(shop):
    claim = {"analytics": True, "ads": True}
    # No decision yet: the claim is not believed, the visitor stays an anonymous daily hash.
    init = post("/init?site=" + shop.public_id, b"", origin=ORIGIN).json()
    pageview(shop, consent=claim, bid=init["bid"], token=init["token"])
    # The visitor grants analytics only: the browser id is used, ads consent is not believed.
    granted = decide(
        shop, ["necessary", "analytics"], ["ads"], bid=init["bid"], token=init["token"]
    ).json()
    assert granted["bid"] == init["bid"]
    pageview(shop, consent=claim, bid=granted["bid"], token=granted["token"])
    # Withdrawn (recorded against the browser id): back to the anonymous hash at once, even
    # with a token that is still valid.
    decide(shop, ["necessary"], ["analytics", "ads"], bid=init["bid"], token=granted["token"])
    pageview(shop, consent=claim, bid=granted["bid"], token=granted["token"])

    (before, during, after) = stored(shop)
    assert before[1] == after[1] == "none"
    assert init["bid"] not in (before[0], after[0])
    assert during == (init["bid"], "analytics")
    withdrawal = ConsentRecord.objects.latest("recorded_at")
    assert (withdrawal.visitor_id, withdrawal.granted) == (init["bid"], ["necessary"])


def test_a_site_with_its_own_cmp_is_trusted_with_its_claims(shop):
    shop.consent_banner_enabled = False
    shop.save()
    forget_site_configs()
    init = post("/init?site=" + shop.public_id, b"", origin=ORIGIN).json()
    pageview(shop, consent={"analytics": True}, bid=init["bid"], token=init["token"])
    assert stored(shop) == [(init["bid"], "analytics")]


def test_records_are_mirrored_to_clickhouse_without_visitor_ids(
    shop, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        decide(shop, ["necessary", "analytics"], ["ads"])
        decide(shop, ["necessary"], ["analytics", "ads"])
    assert not ConsentRecord.objects.filter(mirrored_at__isnull=True).exists()
    mirrored = rows(
        "SELECT visitor_kind, granted, denied, banner_version FROM consent_events "
        "WHERE site_id = {s:String} ORDER BY record_id",
        s=shop.public_id,
    )
    assert mirrored == [
        ("browser", ["analytics", "necessary"], ["ads"], 1),
        ("hashed", ["necessary"], ["ads", "analytics"], 1),
    ]
    columns = rows("SELECT name FROM system.columns WHERE table = 'consent_events'")
    assert "visitor_id" not in {name for (name,) in columns}


def test_banner_version_rises_when_what_visitors_agree_to_changes(shop):
    banner = shop.consent_banner
    banner.accent_color = "#000000"
    banner.save()
    assert not consent_banner_refresh_version(banner=banner)  # restyling asks nobody again
    ConsentPurpose.objects.create(banner=banner, key="video", name="Embedded videos")
    assert consent_banner_refresh_version(banner=banner)
    banner.refresh_from_db()
    assert banner.version == 2
