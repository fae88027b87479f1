"""The scans app without a browser: which pages a scan visits (home pages, configured URLs,
the most-viewed pages from the pages report, the cap), which sites are due, pruning to the last
SCAN_KEEP scans, and the admin: read-only scans of the caller's organizations only, with the
before-consent findings highlighted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client, override_settings
from django.utils import timezone

from naboria.locks import exclusive
from scans.admin import BEFORE_CONSENT_STYLE
from scans.models import Scan, ScanConfig, ScanFinding, ScanPage
from scans.selectors import scan_page_urls, sites_due_for_scan
from scans.services import scans_prune
from sites.models import Role
from sites.services import membership_set
from tests.factories import OrganizationFactory, SiteFactory, UserFactory
from tests.integration.test_reports_api import pageviews

pytestmark = pytest.mark.django_db


@pytest.mark.clickhouse
@pytest.mark.usefixtures("clickhouse_schema")
def test_pages_are_home_pages_configured_urls_then_the_most_viewed_capped():
    site: Any = SiteFactory(allowed_domains=["shop.example", "*.shop.example", "www.shop.example"])
    pageviews(site, "/pricing", "/pricing", "/pricing", "/about", "/about", "/jobs")
    ScanConfig.objects.create(
        site=site, urls=["https://shop.example/cart", "https://elsewhere.example/"]
    )
    urls, notes = scan_page_urls(site=site, limit=5)
    assert urls == [
        "https://shop.example/",
        "https://www.shop.example/",
        "https://shop.example/cart",
        "https://shop.example/pricing",
        "https://shop.example/about",
    ]
    assert notes == [
        "not visited: 'https://elsewhere.example/' is not on the site's allowed domains "
        "(shop.example, *.shop.example, www.shop.example)"
    ]
    ScanConfig.objects.filter(site=site).update(include_top_pages=False)
    assert scan_page_urls(site=site)[0] == [
        "https://shop.example/",
        "https://www.shop.example/",
        "https://shop.example/cart",
    ]
    # Given URLs replace the list (manage.py scan_site --url).
    assert scan_page_urls(site=site, only_urls=["https://shop.example/x"])[0] == [
        "https://shop.example/x"
    ]


def test_only_scheduled_sites_are_due_once_per_interval():
    scheduled: Any = SiteFactory()
    unscheduled: Any = SiteFactory()
    unconfigured: Any = SiteFactory()
    ScanConfig.objects.create(site=scheduled)
    ScanConfig.objects.create(site=unscheduled, scheduled=False)
    assert list(sites_due_for_scan()) == [scheduled]
    Scan.objects.create(site=scheduled, trigger="schedule", status="done")
    assert list(sites_due_for_scan()) == []
    with override_settings(SCAN_INTERVAL_HOURS=1):
        assert list(sites_due_for_scan(now=timezone.now() + timedelta(hours=2))) == [scheduled]
    assert unconfigured not in sites_due_for_scan(now=timezone.now() + timedelta(days=365))


def test_pruning_keeps_the_most_recent_scans_of_that_site_only():
    site: Any = SiteFactory()
    other: Any = SiteFactory()
    now = timezone.now()
    scans = [
        Scan.objects.create(site=site, trigger="command", started_at=now - timedelta(days=days))
        for days in range(4)
    ]
    Scan.objects.create(site=other, trigger="command", started_at=now - timedelta(days=30))
    assert scans_prune(site=site, keep=2) == 2
    assert list(Scan.objects.filter(site=site)) == scans[:2]
    assert Scan.objects.filter(site=other).count() == 1


@pytest.fixture
def scans_of_two_organizations():
    own, other = OrganizationFactory(name="Own Org"), OrganizationFactory(name="Other Org")
    result = []
    for organization, name in ((own, "own-tracker"), (other, "other-tracker")):
        site: Any = SiteFactory(organization=organization, name=f"{name} site")
        scan = Scan.objects.create(site=site, trigger="command", status="done", flagged=1)
        page = ScanPage.objects.create(scan=scan, url="https://example.com/", banner_found=True)
        ScanFinding.objects.create(
            page=page, kind="cookie", phase="before", name=f"{name}-cookie", party="first"
        )
        ScanFinding.objects.create(
            page=page, kind="cookie", phase="after", name="<b>late</b>", party="third"
        )
        result.append(scan)
    return own, *result


def _client_for(organization, role) -> Client:
    user = UserFactory()
    membership_set(organization=organization, user=user, role=role)
    client = Client()
    client.force_login(user)
    return client


def test_admin_shows_only_the_callers_organizations_scans_read_only(scans_of_two_organizations):
    own, own_scan, other_scan = scans_of_two_organizations
    client = _client_for(own, Role.MARKETER)
    listing = client.get("/admin/scans/scan/").content.decode()
    assert "own-tracker site" in listing
    assert "other-tracker" not in listing
    assert client.get(f"/admin/scans/scan/{other_scan.pk}/change/").status_code == 302
    page = client.get(f"/admin/scans/scan/{own_scan.pk}/change/").content.decode()
    # The before-consent finding is highlighted; the after-consent one is not; page-made
    # names are escaped.
    assert f'<tr style="{BEFORE_CONSENT_STYLE}"><td>before consent</td>' in page
    assert '<tr style=""><td>after consent</td><td>cookie</td><td>&lt;b&gt;late' in page
    assert "own-tracker-cookie" in page
    assert 'name="_save"' not in page  # read-only
    assert client.get("/admin/scans/scan/add/").status_code == 403
    response = client.post(f"/admin/scans/scan/{own_scan.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert Scan.objects.filter(pk=own_scan.pk).exists()


def test_scan_configuration_admin_offers_only_the_callers_sites(scans_of_two_organizations):
    own, own_scan, other_scan = scans_of_two_organizations
    client = _client_for(own, Role.MARKETER)
    form = client.get("/admin/scans/scanconfig/add/").content.decode()
    assert f'<option value="{own_scan.site_id}">' in form
    assert f'<option value="{other_scan.site_id}">' not in form
    response = client.post(
        "/admin/scans/scanconfig/add/",
        {"site": other_scan.site_id, "scheduled": "on", "urls": "[]"},
    )
    assert response.status_code == 200  # the form refuses the other organization's site
    assert not ScanConfig.objects.exists()
    response = client.post(
        "/admin/scans/scanconfig/add/",
        {"site": own_scan.site_id, "scheduled": "on", "urls": '["http://10.0.0.1/"]'},
    )
    assert "not on the site" in response.content.decode()
    response = client.post(
        "/admin/scans/scanconfig/add/",
        {"site": own_scan.site_id, "scheduled": "on", "urls": '["https://example.com/shop"]'},
    )
    assert response.status_code == 302
    assert ScanConfig.objects.get().urls == ["https://example.com/shop"]


def test_the_command_refuses_an_unknown_site_and_a_second_scan_at_once():
    with pytest.raises(CommandError, match="no site with public id 'nope'"):
        call_command("scan_site", "nope")
    site: Any = SiteFactory(allowed_domains=["shop.example"])
    with (
        exclusive(f"scan:{site.pk}", hold=60, wait=0),
        pytest.raises(CommandError, match="already running"),
    ):
        call_command("scan_site", site.public_id, url=["https://shop.example/"])
    assert not Scan.objects.exists()
