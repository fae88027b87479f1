"""The server side of IAB TCF: the vendor list refresh (manage.py refresh_vendor_list from a
URL, here a local HTTP server, or a file), the staleness warning (system check consent.W001
and the admin), publisher restrictions and non-standard texts in the admin (validated, scoped to
the organization) and in the banner's config, and the loader served compressed with the banner
within its size budget."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import brotli
import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from consent import vendor_list
from consent.checks import vendor_list_fresh
from consent.models import (
    BannerText,
    ConsentBanner,
    GlobalVendorList,
    RestrictionType,
    TcfPublisherRestriction,
)
from consent.services import consent_banner_ensure
from consent.tasks import refresh_vendor_list
from ingest.tracker_script import built_bundles
from naboria.celery import app
from naboria.periodic_jobs import PERIODIC_JOBS
from sites.services import membership_set
from tests.factories import OrganizationFactory, SiteFactory, UserFactory

pytestmark = pytest.mark.django_db
SHIPPED = json.loads(Path(vendor_list.SHIPPED_VENDOR_LIST_PATH).read_text())
BUNDLE_BUDGET_BYTES = 8192


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    cache.clear()
    vendor_list.forget_current()
    yield
    vendor_list.forget_current()


def gvl(version: int, age_days: int = 0) -> dict[str, Any]:
    """The shipped list as if the IAB had published it as ``version`` ``age_days`` ago."""
    published = timezone.now() - timedelta(days=age_days)
    return {
        **SHIPPED,
        "vendorListVersion": version,
        "lastUpdated": published.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


@pytest.fixture
def gvl_server() -> Iterator[dict[str, Any]]:
    """A local HTTP server answering /v3/vendor-list.json with ``state["body"]``."""
    state: dict[str, Any] = {"body": b"", "status": 200, "requests": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state["requests"] += 1
            status = state["status"] if self.path == "/v3/vendor-list.json" else 404
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(state["body"])

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/v3/vendor-list.json"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def tcf_site(site: Any) -> Any:
    site.consent_banner_enabled = True
    site.save()
    banner = consent_banner_ensure(site=site)
    banner.tcf_enabled = True
    banner.tcf_cmp_id = 300
    banner.tcf_vendor_ids = [2, 31, 77, 126, 755]
    banner.save()
    return site


def refresh(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("refresh_vendor_list", *args, stdout=out)
    return out.getvalue()


def tcf_config(client: Client, site: Any) -> dict[str, Any]:
    cache.clear()
    config: dict[str, Any] = client.get(f"/t/{site.public_id}.json").json()["banner"]["tcf"]
    return config


def test_refresh_from_a_url_stores_a_newer_list_that_banners_then_use(
    client, tcf_site, gvl_server, settings
):
    assert tcf_config(client, tcf_site)["vendorListVersion"] == 7  # the shipped copy
    gvl_server["body"] = json.dumps(gvl(123)).encode()
    settings.TCF_VENDOR_LIST_URL = gvl_server["url"]
    assert "version 123" in refresh()
    assert "already stored" in refresh("--source", gvl_server["url"])
    assert gvl_server["requests"] == 2
    stored = GlobalVendorList.objects.get()
    assert (stored.version, stored.tcf_policy_version, stored.source) == (123, 4, gvl_server["url"])
    assert tcf_config(client, tcf_site)["vendorListVersion"] == 123
    # An older list never replaces a newer one.
    gvl_server["body"] = json.dumps(gvl(100)).encode()
    assert "already stored" in refresh()
    assert list(GlobalVendorList.objects.values_list("version", flat=True)) == [123]


def test_refresh_from_a_file(tmp_path):
    assert "version 7" in refresh("--source", "/work/shared/data/tcf-vendor-list.json")
    assert GlobalVendorList.objects.get().version == 7
    path = tmp_path / "gvl.json"
    path.write_text(json.dumps(gvl(8)))
    refresh("--source", str(path))
    assert vendor_list.vendor_list_version() == 8
    # A list deleted by hand: the newest remaining one is used from the next check on, and at
    # once where the deleted one had not been read yet.
    deleted = GlobalVendorList.objects.get(version=8).pk
    GlobalVendorList.objects.filter(version=8).delete()
    vendor_list.forget_current()
    assert vendor_list.vendor_list_version() == 7
    vendor_list._current = (time.monotonic(), deleted + 1000)
    assert vendor_list.vendor_list_version() == 7


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"", 404, "answered 404"),
        (b"not json", 200, "cannot read a vendor list"),
        (b"[]", 200, "not a JSON object"),
        (json.dumps({**SHIPPED, "gvlSpecificationVersion": 2}).encode(), 200, "GVL v3"),
        (json.dumps({**SHIPPED, "tcfPolicyVersion": 2}).encode(), 200, "policy version 4"),
        (json.dumps({**SHIPPED, "lastUpdated": "soon"}).encode(), 200, "lastUpdated"),
        (json.dumps({**SHIPPED, "vendors": {"1": {"id": 2}}}).encode(), 200, "vendor 1"),
    ],
)
def test_refresh_refuses_what_is_not_a_gvl_v3_and_keeps_the_list(gvl_server, body, status, message):
    gvl_server.update(body=body, status=status)
    with pytest.raises(CommandError, match=message):
        refresh("--source", gvl_server["url"])
    assert not GlobalVendorList.objects.exists()
    with pytest.raises(CommandError, match="cannot read"):
        refresh("--source", "/nonexistent/vendor-list.json")


def test_stale_list_warns_in_the_system_check_and_the_admin(tcf_site, admin_client, tmp_path):
    # The shipped list is from 2023: stale, and a banner uses TCF.
    (warning,) = vendor_list_fresh()
    assert warning.id == "consent.W001"
    assert "refresh_vendor_list" in warning.msg
    page = admin_client.get(reverse("admin:consent_consentbanner_changelist"))
    assert "refresh_vendor_list" in page.content.decode()
    change = reverse("admin:consent_consentbanner_change", args=[tcf_site.consent_banner.pk])
    assert "refresh_vendor_list" in admin_client.get(change).content.decode()
    path = tmp_path / "gvl.json"
    path.write_text(json.dumps(gvl(9, age_days=13)))
    refresh("--source", str(path))
    assert vendor_list_fresh() == []
    assert "refresh_vendor_list" not in admin_client.get(change).content.decode()


def test_staleness_limit_is_configurable_and_only_matters_with_tcf(site, settings, tmp_path):
    path = tmp_path / "gvl.json"
    path.write_text(json.dumps(gvl(9, age_days=20)))
    refresh("--source", str(path))
    consent_banner_ensure(site=site)
    assert vendor_list_fresh() == []  # no banner uses TCF
    ConsentBanner.objects.update(tcf_enabled=True, tcf_cmp_id=300)
    assert [warning.id for warning in vendor_list_fresh()] == ["consent.W001"]
    settings.TCF_VENDOR_LIST_MAX_AGE_DAYS = 30
    assert vendor_list_fresh() == []


def test_config_carries_vendor_details_standard_texts_restrictions_and_labels(client, tcf_site):
    banner = tcf_site.consent_banner
    TcfPublisherRestriction.objects.create(banner=banner, purpose=3, restriction_type=0)
    TcfPublisherRestriction.objects.create(
        banner=banner, purpose=7, restriction_type=1, vendor_ids=[31]
    )
    BannerText.objects.filter(banner=banner).update(tcf_labels={"object": "Refuser"})
    config = tcf_config(client, tcf_site)
    assert config["useNonStandardTexts"] is False
    assert config["restrictions"] == [
        {"purpose": 3, "type": 0, "vendors": [2, 31, 77, 126, 755]},
        {"purpose": 7, "type": 1, "vendors": [31]},
    ]
    captify = config["vendors"][0]
    assert captify["name"] == "Captify Technologies Limited"
    assert captify["retention"] == 365
    assert (captify["usesCookies"], captify["cookieMaxAgeSeconds"]) == (True, 31536000)
    assert captify["privacy"] == "https://www.captifytechnologies.com/privacy-notice/"
    assert captify["data"] == [1, 2, 4, 6, 11]
    purpose_one = SHIPPED["purposes"]["1"]
    assert config["names"]["purposes"]["1"] == [
        purpose_one["name"].strip(),
        purpose_one["description"].strip(),
    ]
    assert set(config["names"]["purposes"]) == {"1", "2", "3", "4", "7", "8", "9", "10"}
    assert set(config["names"]["specialFeatures"]) == {"2"}
    labels = client.get(f"/t/{tcf_site.public_id}.json").json()["banner"]["texts"]["en"]["tcf"]
    assert labels["object"] == "Refuser"
    assert labels["consent"] == "Consent"
    assert labels["vendors"] == "Partners (IAB TCF vendors)"
    assert "{n} partners" in labels["notice"]

    banner.tcf_non_standard_texts = {"1": {"name": "Cookies", "description": "Ours."}}
    banner.save()
    config = tcf_config(client, tcf_site)
    assert config["useNonStandardTexts"] is True
    assert config["names"]["purposes"]["1"] == ["Cookies", "Ours."]


def test_restrictions_and_texts_are_validated(tcf_site):
    banner = tcf_site.consent_banner
    for purpose in (1, 3, 4, 5, 6):
        with pytest.raises(ValidationError, match="no legitimate interest"):
            TcfPublisherRestriction(
                banner=banner,
                purpose=purpose,
                restriction_type=RestrictionType.REQUIRE_LEGITIMATE_INTEREST,
            ).full_clean()
    TcfPublisherRestriction(banner=banner, purpose=2, restriction_type=2).full_clean()
    with pytest.raises(ValidationError, match="not among the banner's vendors"):
        TcfPublisherRestriction(
            banner=banner, purpose=2, restriction_type=0, vendor_ids=[31, 999]
        ).full_clean()
    with pytest.raises(ValidationError):
        TcfPublisherRestriction(banner=banner, purpose=12, restriction_type=0).full_clean()
    bad_texts: list[object] = [{"12": {"name": "a", "description": "b"}}, {"1": {"name": "a"}}, []]
    for texts in bad_texts:
        banner.tcf_non_standard_texts = texts
        with pytest.raises(ValidationError, match="tcf_non_standard_texts"):
            banner.full_clean()
    text = banner.texts.get()
    text.tcf_labels = {"unknown": "x"}
    with pytest.raises(ValidationError, match="tcf_labels"):
        text.full_clean()


def _admin_form_data(response: Any, **changes: Any) -> dict[str, Any]:
    """The POST data of an admin change page as it stands (the banner form and its inlines)."""
    data: dict[str, Any] = {}
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        data.update(
            {management.add_prefix(name): management[name].value() for name in management.fields}
        )
        forms.extend(formset.forms)
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            if value is True:
                data[form.add_prefix(name)] = "on"
            elif value not in (None, False):
                data[form.add_prefix(name)] = value
    data.update(changes)
    return data


def test_admin_adds_restrictions_within_the_members_organization(tcf_site):
    banner = tcf_site.consent_banner
    user = UserFactory()
    membership_set(organization=tcf_site.organization, user=user, role="marketer")
    client = Client()
    client.force_login(user)
    change = reverse("admin:consent_consentbanner_change", args=[banner.pk])
    page = client.get(change)
    assert page.status_code == 200
    prefix = "tcf_restrictions"
    data = _admin_form_data(
        page,
        **{
            f"{prefix}-TOTAL_FORMS": "1",
            f"{prefix}-0-purpose": "7",
            f"{prefix}-0-restriction_type": "1",
            f"{prefix}-0-vendor_ids": "[31, 755]",
        },
    )
    response = client.post(change, data)
    assert response.status_code == 302, response.context and response.context["errors"]
    restriction = TcfPublisherRestriction.objects.get(banner=banner)
    assert (restriction.purpose, restriction.vendor_ids) == (7, [31, 755])
    # Restrictions are part of what visitors agree to: the banner's version rose.
    assert ConsentBanner.objects.get(pk=banner.pk).version == banner.version + 1
    # An invalid one is refused with a message, nothing saved.
    data[f"{prefix}-TOTAL_FORMS"] = "1"
    bad = _admin_form_data(
        client.get(change), **{f"{prefix}-0-restriction_type": "2", f"{prefix}-0-purpose": "1"}
    )
    response = client.post(change, bad)
    assert response.status_code == 200
    assert "no legitimate interest" in response.content.decode()
    assert TcfPublisherRestriction.objects.get(banner=banner).purpose == 7

    # A member of another organization neither sees nor changes this banner.
    other = SiteFactory(organization=OrganizationFactory())
    stranger = UserFactory()
    membership_set(organization=other.organization, user=stranger, role="owner")
    client.force_login(stranger)
    assert client.get(change).status_code in (302, 403, 404)
    assert client.post(change, data).status_code in (302, 403, 404)
    assert TcfPublisherRestriction.objects.get(banner=banner).vendor_ids == [31, 755]


@pytest.mark.parametrize(
    ("accept", "encoding"),
    [("gzip, deflate, br, zstd", "br"), ("gzip", "gzip"), ("br;q=0, gzip", "gzip"), ("", None)],
)
def test_loader_and_config_are_served_compressed(client, tcf_site, accept, encoding):
    headers = {"HTTP_ACCEPT_ENCODING": accept} if accept else {}
    plain = client.get(f"/t/{tcf_site.public_id}.js").content
    for path in (f"/t/{tcf_site.public_id}.js", f"/t/{tcf_site.public_id}.json"):
        cache.clear()
        response = client.get(path, **headers)
        assert response.status_code == 200
        assert "Accept-Encoding" in response["Vary"]
        assert response.get("Content-Encoding") == encoding
        body = response.content
        if encoding == "br":
            body = brotli.decompress(body)
        elif encoding == "gzip":
            body = gzip.decompress(body)
        if path.endswith(".js"):
            assert body == plain
        else:
            assert json.loads(body)["site"] == tcf_site.public_id
        assert int(response["Content-Length"]) == len(response.content)


def test_sizes_the_banner_with_both_layers_and_the_loader_within_budget(client, tcf_site):
    """Item 7 of issue 15: the banner bundle (both layers, TCF encoder and API) <= 8 KB gzipped;
    the loader as served for a TCF site with 5 vendors, compressed, well under its plain size."""
    banner_file = Path(settings.TRACKER_DIST_DIR) / built_bundles()["banner"]
    banner_gzipped = len(gzip.compress(banner_file.read_bytes(), compresslevel=9))
    assert banner_gzipped <= BUNDLE_BUDGET_BYTES, f"banner {banner_gzipped} B gzipped"
    plain = client.get(f"/t/{tcf_site.public_id}.js").content
    cache.clear()
    served = client.get(f"/t/{tcf_site.public_id}.js", HTTP_ACCEPT_ENCODING="gzip").content
    # The TCF config (IAB texts of 8 purposes, 5 vendors): 15.6 KB plain, 5.5 KB gzipped.
    assert len(served) * 2 < len(plain), (len(served), len(plain))
    assert len(served) <= BUNDLE_BUDGET_BYTES, f"loader {len(served)} B gzipped"


def test_beat_refreshes_the_list_daily_only_where_a_banner_uses_tcf(
    tcf_site, gvl_server, settings, caplog
):
    job = PERIODIC_JOBS["refresh-vendor-list"]
    assert job["task"] in app.tasks
    assert job["schedule"].hour == {4}
    settings.TCF_VENDOR_LIST_URL = gvl_server["url"]
    gvl_server["body"] = json.dumps(gvl(124)).encode()
    assert refresh_vendor_list() == 124
    assert GlobalVendorList.objects.get().version == 124
    # The IAB unreachable: the stored list stays, a warning says why.
    gvl_server["status"] = 503
    gvl_server["body"] = b"unavailable"
    assert refresh_vendor_list() is None
    assert "vendor list not refreshed" in caplog.text
    assert GlobalVendorList.objects.get().version == 124
    # No TCF banner: the IAB is never asked.
    ConsentBanner.objects.update(tcf_enabled=False)
    asked = gvl_server["requests"]
    assert refresh_vendor_list() is None
    assert gvl_server["requests"] == asked
