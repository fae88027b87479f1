"""The per-site loader /t/<site>.js and its JSON twin: the site's config embedded, the bundles
it loads depending on the site's features, caching, and clear answers for unknown sites."""

from __future__ import annotations

import json
import re

import pytest
from django.core.cache import cache

from consent.services import consent_banner_ensure
from ingest.tracker_script import CONFIG_PLACEHOLDER

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()


def embedded_config(script: str) -> dict:
    assert CONFIG_PLACEHOLDER not in script
    config, _ = json.JSONDecoder().raw_decode(script, script.index('{"site":'))
    return config


def test_loader_embeds_the_config_and_loads_versioned_bundles(client, site):
    site.consent_banner_enabled = True
    site.save()
    banner = consent_banner_ensure(site=site)
    banner.texts.update(body="Cookies </script><script>alert(1)</script>")
    response = client.get(f"/t/{site.public_id}.js")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/javascript"
    assert response["Cache-Control"] == "public, max-age=300"
    script = response.content.decode()
    assert "</script>" not in script  # a banner text cannot close an inline script
    config = embedded_config(script)
    assert config["site"] == site.public_id
    assert config["host"] == "http://testserver"
    assert config["features"] == {
        "analytics": True,
        "ads": True,
        "outbound": True,
        "downloads": True,
        "engagement": True,
        "dnt": True,
        "recs": False,
    }
    assert config["recsScript"] is None
    names = [url.rsplit("/", 1)[1] for url in config["scripts"]]
    assert [name.split(".")[0] for name in names] == ["tracker", "ads", "banner"]
    assert all(re.fullmatch(r"[a-z]+\.[0-9a-f]{10}\.js", name) for name in names)
    purposes = [purpose["key"] for purpose in config["banner"]["purposes"]]
    assert purposes == ["necessary", "analytics", "ads"]
    assert config["banner"]["texts"]["en"]["accept"] == "Accept all"
    assert config["banner"]["tcf"] is None


def test_sites_without_ads_or_banner_load_only_the_core(client, site):
    site.ads_enabled = False
    site.consent_banner_enabled = False
    site.save()
    config = embedded_config(client.get(f"/t/{site.public_id}.js").content.decode())
    assert [url.rsplit("/", 1)[1].split(".")[0] for url in config["scripts"]] == ["tracker"]
    assert config["banner"] is None


def test_recommendations_module_is_served_only_to_sites_with_recommendations_on(client, site):
    site.recommendations_enabled = True
    site.save()
    config = embedded_config(client.get(f"/t/{site.public_id}.js").content.decode())
    assert config["features"]["recs"] is True
    # Not among the scripts every browser loads: the loader loads it in modern browsers only.
    assert "recs" not in [url.rsplit("/", 1)[1].split(".")[0] for url in config["scripts"]]
    assert re.fullmatch(
        r"http://testserver/static/naboria/recs\.[0-9a-f]{10}\.js", config["recsScript"]
    )


def test_tcf_config_carries_the_chosen_vendors_from_the_vendor_list(client, site):
    site.consent_banner_enabled = True
    site.save()
    banner = consent_banner_ensure(site=site)
    banner.tcf_enabled, banner.tcf_cmp_id, banner.tcf_vendor_ids = True, 300, [755, 2]
    banner.save()
    tcf = client.get(f"/t/{site.public_id}.json").json()["banner"]["tcf"]
    assert (tcf["cmpId"], tcf["vendorListVersion"], tcf["tcfPolicyVersion"]) == (300, 7, 4)
    assert [vendor["id"] for vendor in tcf["vendors"]] == [2, 755]
    assert tcf["vendors"][1]["name"] == "Google Advertising Products"


def test_json_config_for_bundling_apps(client, site):
    response = client.get(f"/t/{site.public_id}.json")
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    assert response.json()["site"] == site.public_id


def test_unknown_sites_get_a_404_that_says_so(client):
    script = client.get("/t/nosuchsite.js")
    assert script.status_code == 404
    assert "unknown site 'nosuchsite'" in script.content.decode()
    assert client.get("/t/nosuchsite.json").json() == {"error": "unknown site 'nosuchsite'"}


def test_loader_only_answers_get(client, site):
    assert client.post(f"/t/{site.public_id}.js").status_code == 405


def test_demo_page_embeds_the_loader_with_one_tag(client, site):
    page = client.get(f"/demo/?site={site.public_id}").content.decode()
    assert f'<script src="/t/{site.public_id}.js" async></script>' in page
    assert client.get("/demo/?site=nosuchsite").status_code == 404
