"""Proof of consent that stands (issue 15, item 4): each banner version kept as an immutable
snapshot that records point to and the export includes; the /consent endpoint refusing what
the banner could not have produced (unknown version or purpose, a TC string that does not
decode or contradicts ``granted``, a grant for someone else's browser id); the retention purge.
TC strings are made by the IAB's own library (@iabtcf/core), not by the code under test."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import zipfile
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db.models import RestrictedError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from consent.models import (
    ConsentBanner,
    ConsentBannerSnapshot,
    ConsentPurpose,
    ConsentRecord,
    SnapshotImmutable,
)
from consent.retention import consent_records_purge
from consent.services import consent_banner_ensure, consent_banner_refresh_version
from consent.tc_string import InvalidTCString, tc_string_decode
from ingest.selectors import forget_site_configs
from naboria.celery import app
from naboria.periodic_jobs import PERIODIC_JOBS
from scripts.test_services import ROOT
from sites.models import Role
from sites.services import membership_set
from tests.factories import OrganizationFactory, SiteFactory, UserFactory
from tests.integration.test_collect_direct import post

pytestmark = [
    pytest.mark.clickhouse,
    pytest.mark.django_db,
    pytest.mark.usefixtures("clickhouse_schema", "direct_path"),
]
ORIGIN = "https://shop.example"
ALL = ["ads", "analytics", "necessary"]
CMP_ID = 300


@pytest.fixture
def shop(site_with_banner):
    return site_with_banner


@pytest.fixture
def site(organization):
    """The shop's site, with its domain from the start: a later change of its domains changes
    what the banner config says, a new snapshot revision."""
    return SiteFactory(organization=organization, allowed_domains=["shop.example"])


@pytest.fixture
def tcf_shop(shop):
    banner = shop.consent_banner
    banner.tcf_enabled, banner.tcf_cmp_id = True, CMP_ID
    banner.tcf_vendor_ids = [1, 2, LI_VENDOR]
    banner.save()
    consent_banner_refresh_version(banner=banner)
    return shop


def decide(site, granted, denied, *, version=None, **extra):
    version = version or ConsentBanner.objects.get(site=site).version
    body = {"site": site.public_id, "version": version, "granted": granted, "denied": denied}
    return post("/consent", {**body, **extra}, origin=ORIGIN)


VENDOR_LIST = ROOT / "consent" / "data" / "tcf-vendor-list.json"
# A vendor declaring legitimate interests (the library keeps the bit only for such a vendor).
LI_VENDOR = next(
    int(key) for key, vendor in json.loads(VENDOR_LIST.read_text())["vendors"].items()
    if vendor["legIntPurposes"]
)  # fmt: skip


def iab_tc_string(
    *, purposes: list[int], cmp_id: int = CMP_ID, vendors=(1, 2), special_features=()
) -> str:
    """A TC string encoded by the IAB's JavaScript library."""
    script = """
    import { TCModel, TCString, GVL } from '@iabtcf/core'
    import fs from 'fs'
    const [list, fields] = [process.argv[1], JSON.parse(process.argv[2])]
    const model = new TCModel(new GVL(JSON.parse(fs.readFileSync(list))))
    model.cmpId = fields.cmpId; model.cmpVersion = 1; model.consentLanguage = 'EN'
    model.isServiceSpecific = true; model.publisherCountryCode = 'FR'
    model.purposeConsents.set(fields.purposes); model.vendorConsents.set(fields.vendors)
    model.specialFeatureOptins.set(fields.sf); model.vendorLegitimateInterests.set(fields.li)
    process.stdout.write(TCString.encode(model))
    """
    fields = {
        "cmpId": cmp_id,
        "purposes": purposes,
        "vendors": list(vendors),
        "li": [LI_VENDOR],
        "sf": list(special_features),
    }
    return subprocess.run(
        ["node", "--input-type=module", "-e", script,
         str(VENDOR_LIST), json.dumps(fields)],
        cwd=ROOT / "tracker", capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip


# --- The TC string decoder -----------------------------------------------------------------


def test_the_decoder_reads_what_the_iab_library_encoded():
    decoded = tc_string_decode(
        iab_tc_string(purposes=[1, 2, 3, 4, 7], vendors=[1, 2, 755], special_features=[1])
    )
    assert (decoded.version, decoded.cmp_id, decoded.cmp_version) == (2, CMP_ID, 1)
    assert decoded.policy_version >= 4  # TCF v2.2
    assert decoded.purpose_consents == {1, 2, 3, 4, 7}
    assert decoded.vendor_consents == {1, 2, 755}
    assert decoded.vendor_legitimate_interests == {LI_VENDOR}
    assert decoded.special_feature_optins == {1}
    assert (decoded.consent_language, decoded.publisher_country) == ("EN", "FR")
    assert decoded.is_service_specific
    assert not decoded.use_non_standard_texts


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("CQabc", "base64url"),
        ("CAAA", "truncated"),  # a library that reads past the end would take it
        ("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "version 0"),
        ("C<script>", "base64url"),
    ],
)
def test_the_decoder_refuses_what_is_not_a_tc_string(text, reason):
    with pytest.raises(InvalidTCString, match=reason):
        tc_string_decode(text)


def test_the_decoder_refuses_a_truncated_string_and_a_bad_segment():
    good = iab_tc_string(purposes=[1])
    core = good.split(".")[0]
    with pytest.raises(InvalidTCString, match="truncated"):
        tc_string_decode(core[:30])
    with pytest.raises(InvalidTCString, match="segment"):
        tc_string_decode(core + ".zzzz")


# --- Refusals of the /consent endpoint ------------------------------------------------------


@pytest.mark.parametrize(
    ("granted", "denied", "extra", "message"),
    [
        (ALL, [], {"version": 987654}, "unknown banner version 987654"),
        (["necessary", "spying"], ["ads", "analytics"], {}, "unknown purposes"),
        (["necessary"], ["ads"], {}, "missing: analytics"),
        (["ads", "analytics"], ["necessary"], {}, "strictly necessary"),
        (ALL, [], {"tc": "CQabc.IAAA"}, "does not use IAB TCF"),
    ],
)
def test_records_the_banner_could_not_have_made_are_refused(shop, granted, denied, extra, message):
    answer = decide(shop, granted, denied, **extra)
    assert answer.status_code == 400, answer.content
    assert message in answer.json()["error"]
    assert not ConsentRecord.objects.exists()


def test_tc_strings_must_decode_and_agree_with_the_version_and_granted(tcf_shop):
    vendor_list = json.loads(VENDOR_LIST.read_text())["vendors"]
    declared = [vendor_list[str(i)] for i in (1, 2, LI_VENDOR)]
    offered = {1, 2, 3, 4, 7, 8, 9, 10} | {p for vendor in declared for p in vendor["purposes"]}
    features = {f for vendor in declared for f in vendor["specialFeatures"]}
    cases = [
        ("", "needs its TC string"),
        ("CQabc.IAAA", "does not decode"),
        ("CAAA", "does not decode"),
        (iab_tc_string(purposes=[1, 2, 3, 4, 7], cmp_id=301), "names CMP 301"),
        (iab_tc_string(purposes=[1, 2, 3, 4, 7], vendors=[1, 2, 755]), "names vendors 755"),
        # analytics (1, 8, 9, 10) was denied, yet the string consents to all of them
        (iab_tc_string(purposes=[1, 2, 3, 4, 7, 8, 9, 10]), "every TCF purpose of analytics"),
    ]
    if unasked := sorted(set(range(1, 12)) - offered):
        cases.append((iab_tc_string(purposes=[1, 2, 3, 4, 7, unasked[0]]), "does not ask for"))
    if undeclared := sorted(set(range(1, 3)) - features):
        cases.append(
            (iab_tc_string(purposes=[1, 2], special_features=undeclared[:1]), "special features")
        )
    for tc, message in cases:
        answer = decide(tcf_shop, ["ads", "necessary"], ["analytics"], tc=tc)
        assert answer.status_code == 400, (tc, answer.content)
        assert message in answer.json()["error"]
    assert not ConsentRecord.objects.exists()
    # What the banner sends: the TCF choices, here without 3 and 4 (as Global Privacy Control
    # would leave them), and only part of analytics' purposes.
    for tc in (iab_tc_string(purposes=[1, 2, 3, 4, 7]), iab_tc_string(purposes=[1, 2, 7, 8])):
        answer = decide(tcf_shop, ["ads", "necessary"], ["analytics"], tc=tc)
        assert answer.status_code == 201, answer.content
        assert ConsentRecord.objects.latest("id").tc_string == tc


def test_a_grant_for_a_browser_id_needs_its_token(shop):
    owner = decide(shop, ALL, []).json()  # the owner's browser id and token
    before = ConsentRecord.objects.count()
    # Someone else names the owner's browser id, without its token or with a made-up one.
    for extra in ({}, {"token": "0" * 64}):
        answer = decide(shop, ["analytics", "necessary"], ["ads"], bid=owner["bid"], **extra)
        assert answer.status_code == 403
        assert "needs that id's valid token" in answer.json()["error"]
    assert ConsentRecord.objects.count() == before
    # Any grant beyond the strictly necessary, not only analytics and ads.
    ConsentPurpose.objects.create(banner=shop.consent_banner, key="video", name="Videos")
    assert consent_banner_refresh_version(banner=shop.consent_banner)
    video = decide(shop, ["necessary", "video"], ["ads", "analytics"], bid=owner["bid"])
    assert video.status_code == 403
    assert video.json()["error"].startswith("a decision granting video for a browser id")
    assert ConsentRecord.objects.count() == before
    # The owner, with the token, changes the decision for that id.
    answer = decide(
        shop, ["analytics", "necessary"], ["ads", "video"], bid=owner["bid"], token=owner["token"]
    )
    assert answer.status_code == 201, answer.content
    assert answer.json()["bid"] == owner["bid"]
    assert ConsentRecord.objects.latest("id").visitor_id == owner["bid"]


def test_a_withdrawal_needs_no_token(shop):
    """It can only reduce what is processed, and an expired token must not block it."""
    owner = decide(shop, ALL, []).json()
    answer = decide(shop, ["necessary"], ["ads", "analytics"], bid=owner["bid"])
    assert answer.status_code == 201
    assert "bid" not in answer.json()
    withdrawal = ConsentRecord.objects.latest("id")
    assert (withdrawal.visitor_id, withdrawal.granted) == (owner["bid"], ["necessary"])


# --- Snapshots ------------------------------------------------------------------------------


def test_each_banner_version_is_kept_and_records_point_to_theirs(shop):
    banner = shop.consent_banner
    first = ConsentBannerSnapshot.objects.get(banner=banner)
    assert (first.version, first.revision) == (1, 1)
    assert [p["key"] for p in first.content["purposes"]] == ["necessary", "analytics", "ads"]
    assert first.content["texts"]["en"]["accept"] == "Accept all"
    assert first.content["tcf"] is None
    assert first.content["colors"]["accent"] == "#2f5bd3"
    assert decide(shop, ALL, []).status_code == 201

    ConsentPurpose.objects.create(banner=banner, key="video", name="Embedded videos")
    assert consent_banner_refresh_version(banner=banner)
    second = ConsentBannerSnapshot.objects.get(banner=banner, version=2)
    assert "video" in [p["key"] for p in second.content["purposes"]]
    # A decision made on a page still showing version 1 is checked against version 1.
    assert decide(shop, ALL, [], version=1).status_code == 201
    assert decide(shop, ALL, [], version=2).json()["error"].endswith("missing: video")
    assert decide(shop, [*ALL, "video"], [], version=2).status_code == 201
    assert [r.snapshot for r in ConsentRecord.objects.order_by("id")] == [first, first, second]

    # A restyle keeps the version (nobody is asked again) and is kept as a revision.
    banner.refresh_from_db()
    banner.accent_color = "#000000"
    banner.save()
    assert not consent_banner_refresh_version(banner=banner)
    restyled = ConsentBannerSnapshot.objects.get(banner=banner, version=2, revision=2)
    assert restyled.content["colors"]["accent"] == "#000000"
    assert decide(shop, [*ALL, "video"], [], version=2).status_code == 201
    assert ConsentRecord.objects.latest("id").snapshot == restyled
    # Taking a snapshot again without a change adds nothing.
    consent_banner_ensure(site=shop)
    assert ConsentBannerSnapshot.objects.filter(banner=banner).count() == 3


def test_a_change_made_outside_the_admin_is_snapshotted_before_a_record_points_to_it(shop):
    banner = shop.consent_banner
    banner.texts.update(body="A new text nobody snapshotted yet.")
    assert decide(shop, ALL, []).status_code == 201
    snapshot = ConsentRecord.objects.get().snapshot
    assert snapshot is not None
    assert snapshot.revision == 2
    assert snapshot.content["texts"]["en"]["body"] == "A new text nobody snapshotted yet."


def test_snapshots_cannot_be_changed_or_deleted(shop, admin_client):
    snapshot = ConsentBannerSnapshot.objects.get(banner=shop.consent_banner)
    snapshot.content = {"forged": True}
    with pytest.raises(SnapshotImmutable):
        snapshot.save()
    with pytest.raises(SnapshotImmutable):
        snapshot.delete()
    base = "/admin/consent/consentbannersnapshot/"
    page = admin_client.get(f"{base}{snapshot.pk}/change/").content.decode()
    assert "Accept all" in page
    assert 'name="_save"' not in page
    assert admin_client.get(f"{base}add/").status_code == 403
    assert admin_client.post(f"{base}{snapshot.pk}/delete/", {"post": "yes"}).status_code == 403
    changed = admin_client.post(f"{base}{snapshot.pk}/change/", {"version": 5})
    assert changed.status_code == 403
    snapshot.refresh_from_db()
    assert (snapshot.version, "forged" in snapshot.content) == (1, False)


def test_deleting_the_banner_alone_cannot_remove_the_proof_deleting_the_site_does(shop):
    assert decide(shop, ALL, []).status_code == 201
    with pytest.raises(RestrictedError):
        ConsentBanner.objects.filter(site=shop).delete()
    assert ConsentRecord.objects.filter(site=shop).count() == 1
    shop.delete()
    assert not ConsentRecord.objects.exists()
    assert not ConsentBannerSnapshot.objects.exists()


def test_members_see_only_their_own_organizations_snapshots(shop):
    other_org = OrganizationFactory()
    other_site: Any = SiteFactory(organization=other_org, name="Other site")
    consent_banner_ensure(site=other_site)
    user = UserFactory()
    membership_set(organization=shop.organization, user=user, role=Role.MARKETER)
    client = Client()
    client.force_login(user)
    page = client.get("/admin/consent/consentbannersnapshot/").content.decode()
    assert str(shop) in page
    assert "Other site" not in page
    theirs = ConsentBannerSnapshot.objects.get(banner__site=other_site)
    response = client.get(f"/admin/consent/consentbannersnapshot/{theirs.pk}/change/")
    assert response.status_code == 302  # the admin's answer for an object it does not show


def test_the_proof_export_holds_the_records_and_the_snapshots_they_point_to(tcf_shop, admin_client):
    tc = iab_tc_string(purposes=[1, 2, 3, 4, 7, 8, 9, 10])
    decide(tcf_shop, ALL, [], tc=tc)
    decide(tcf_shop, ["necessary"], ["ads", "analytics"], tc=iab_tc_string(purposes=[]))
    response = admin_client.post(
        reverse("admin:consent_consentbanner_changelist"),
        {"action": "export_proof_of_consent", "_selected_action": [tcf_shop.consent_banner.pk]},
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert f"proof-of-consent-{tcf_shop.public_id}" in response["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    records = list(csv.DictReader(io.StringIO(archive.read("records.csv").decode())))
    snapshots = {item["id"]: item for item in json.loads(archive.read("snapshots.json"))}
    assert [(line["granted"], line["tc_string"]) for line in records] == [
        ("ads analytics necessary", tc),
        ("necessary", records[1]["tc_string"]),
    ]
    shown = snapshots[int(records[0]["banner_snapshot"])]
    assert shown["version"] == int(records[0]["banner_version"]) == 2
    assert shown["content"]["tcf"]["cmpId"] == CMP_ID
    assert shown["content"]["tcf"]["vendorListVersion"] > 0
    assert shown["content"]["texts"]["en"]["purposes"]["ads"]["name"]
    assert {item["version"] for item in snapshots.values()} == {1, 2}


# --- Retention ------------------------------------------------------------------------------


def _record_aged(site, days: int) -> ConsentRecord:
    assert decide(site, ALL, []).status_code == 201
    record = ConsentRecord.objects.latest("id")
    record.recorded_at = timezone.now() - timedelta(days=days)
    record.save(update_fields=["recorded_at"])
    return record


def test_records_are_purged_after_the_retention_period(shop, settings):
    settings.CONSENT_RECORD_RETENTION_DAYS = 30
    old, recent = _record_aged(shop, 31), _record_aged(shop, 29)
    assert consent_records_purge() == 1
    assert list(ConsentRecord.objects.all()) == [recent]
    assert not ConsentRecord.objects.filter(pk=old.pk).exists()
    assert ConsentBannerSnapshot.objects.filter(banner=shop.consent_banner).exists()
    # A banner's own period wins over the installation's.
    banner = shop.consent_banner
    banner.record_retention_days = 10
    banner.save()
    other: Any = SiteFactory(organization=shop.organization, allowed_domains=["shop.example"])
    other.consent_banner_enabled = True
    other.save()
    consent_banner_ensure(site=other)
    forget_site_configs()
    kept_elsewhere = _record_aged(other, 20)
    output = io.StringIO()
    call_command("purge_consent_records", stdout=output)
    assert output.getvalue().strip() == "1 consent records purged"
    assert list(ConsentRecord.objects.all()) == [kept_elsewhere]


def test_the_purge_runs_daily_from_beat():
    job = PERIODIC_JOBS["purge-consent-records"]
    assert job["task"] in app.tasks
    assert job["schedule"].hour == {2}
