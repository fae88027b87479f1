"""The creative sanitiser (ads.sanitising): what HTML and inline CSS an ad may hold, so that a
creative shown before ads consent fetches nothing from a third party; and that every write
path stores, and so publishes, sanitised HTML (the admin's is tests/integration/
test_ad_delivery.py::test_saving_a_campaign_in_the_admin_publishes_its_ads)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import call_command

from ads import snapshot
from ads.documents import DeliveryAdDocument
from ads.models import Ad, Advertiser, Campaign, CampaignStatus, CreativeKind, Placement
from ads.publishing import campaigns_publish
from ads.sanitising import css_value_is_safe, sanitise_creative_html

RAW = '<script>fetch("https://t.example")</script><div style="background:url(https://x)">a</div>'


@pytest.mark.parametrize(
    ("html", "sanitised"),
    [
        pytest.param(RAW, "<div>a</div>", id="script-and-background"),
        pytest.param(
            '<div style="color:red; background-color:url(https://t.example/p.gif)">a</div>',
            '<div style="color:red">a</div>',
            id="url-in-an-allowed-property",
        ),
        pytest.param(
            '<div style="color:red; border-color:u\\72l(https://t.example/p.gif)">a</div>',
            '<div style="color:red">a</div>',
            id="escaped-url",
        ),
        pytest.param(
            '<div style="color:red; border-color:U\\000052 L(https://t.example/p.gif)">a</div>',
            '<div style="color:red">a</div>',
            id="six-digit-escape-and-upper-case",
        ),
        pytest.param(
            '<div style="color:red; border-color:u/**/rl(https://t.example/p.gif)">a</div>',
            '<div style="color:red">a</div>',
            id="comment-inside",
        ),
        pytest.param(
            '<div style="color:red; background-color:-webkit-image-set(&quot;x.png&quot; 1x);'
            ' border-color:image-set(&quot;y.png&quot; 1x)">a</div>',
            '<div style="color:red">a</div>',
            id="image-set",
        ),
        pytest.param(
            '<div style="color:red; width:expression(alert(1)); height:var(--x)">a</div>',
            '<div style="color:red">a</div>',
            id="expression-and-var",
        ),
        pytest.param(
            '<div style="@import url(https://t.example/s.css); color:red">a</div>',
            '<div style="color:red">a</div>',
            id="import",
        ),
        pytest.param(
            '<div style="color:red; background-image:url(x); border-image:url(x) 30;'
            " list-style-image:url(x); content:url(x); cursor:url(x), auto; mask:url(x);"
            ' filter:url(#f); position:fixed">a</div>',
            '<div style="color:red">a</div>',
            id="properties-not-allowed",
        ),
        pytest.param(
            '<div style="position:fixed; top:0">a</div>', "<div>a</div>", id="nothing-allowed-left"
        ),
        pytest.param(
            '<div style="width:calc(100% - 4px); color:rgb(1 2 3 / 50%);'
            ' height:calc(100% - (2 * 4px))">a</div>',
            '<div style="width:calc(100% - 4px);color:rgb(1 2 3 / 50%)">a</div>',
            id="functions-allowed-unnested",
        ),
        pytest.param(
            '<div style="font-family:&quot;a;url(b)&quot;, serif; color:blue">a</div>',
            '<div style="color:blue">a</div>',
            id="semicolon-in-a-string",
        ),
        pytest.param(
            '<div style="font-family:&quot;Winter; Sale&quot;, serif">a</div>',
            '<div style="font-family:&quot;Winter; Sale&quot; , serif">a</div>',
            id="string-kept-whole",
        ),
        pytest.param(
            '<img src="//t.example/x.png"><img src="/x.png"><img src="data:image/png;base64,AA">'
            '<img src="https://cdn.example/a.png" srcset="https://t.example/x 2x" onerror="x()">',
            '<img><img><img><img src="https://cdn.example/a.png">',
            id="image-addresses",
        ),
        pytest.param(
            '<table background="https://t.example/x"><tr><td background="https://t.example/y">'
            "x</td></tr></table>",
            "<table><tbody><tr><td>x</td></tr></tbody></table>",
            id="table-backgrounds",
        ),
        pytest.param(
            '<svg><image href="https://t.example/x"/></svg><link rel="stylesheet" '
            'href="https://t.example/s.css"><style>@import "https://t.example/s.css"</style>'
            '<iframe src="https://t.example/"></iframe><video poster="https://t.example/p.jpg">'
            "</video><object data='https://t.example/o'></object>b",
            "b",
            id="tags-that-fetch",
        ),
        pytest.param(
            '<a href="https://shop.example/" onclick="x()">go</a>',
            '<a href="https://shop.example/" rel="noopener noreferrer">go</a>',
            id="link",
        ),
    ],
)
def test_a_creative_keeps_only_what_fetches_nothing(html, sanitised):
    assert sanitise_creative_html(html) == sanitised
    assert sanitise_creative_html(sanitised) == sanitised  # saving again changes nothing


def test_an_everyday_banner_is_kept():
    banner = (
        '<div style="width:300px;height:250px;background-color:#2f5bd3;color:#fff;'
        "font:20px sans-serif;padding:24px;box-sizing:border-box;display:flex;"
        'flex-direction:column;border:1px solid #000;border-radius:4px">'
        '<strong>Boots</strong><p style="margin:0;text-align:center">Winter collection</p>'
        '<img src="https://cdn.example/boots.png" alt="Boots" width="100" height="80"></div>'
    )
    assert sanitise_creative_html(banner) == banner


@pytest.mark.parametrize(
    ("value", "safe"),
    [
        ("#fff", True),
        ("rgba(0, 0, 0, .5)", True),
        ("clamp(1px, 2vw, 3px)", True),
        ("1px solid red", True),
        ("url(x)", False),
        ("URL(x)", False),
        ("url (x)", False),
        ("\\75 \\72 \\6c (x)", False),
        ("u\\rl(x)", False),
        ("image(x)", False),
        ("cross-fade(x, y)", False),
        ("element(#x)", False),
        ("env(x)", False),
        ("attr(data-x url)", False),
        ("red; @import 'x'", False),
        # Read as a browser reads them: escapes decoded, comments dropped.
        ("red; @\\69mport 'x'", False),
        ("\\72 gb(1 2 3)", True),
        ("red /* was url(x) */", True),
        ("\\2f\\2a url(x)", False),  # an escaped /* opens no comment
        ("'/*' url(x)", False),  # nor does one in a string
    ],
)
def test_css_values_may_call_colour_and_arithmetic_functions_only(value, safe):
    assert css_value_is_safe(value) is safe


@pytest.fixture
def campaign(site) -> Campaign:
    placement = Placement.objects.create(site=site, name="Sidebar", sizes=["300x250"])
    advertiser = Advertiser.objects.create(organization=site.organization, name="Outdoor")
    campaign = Campaign.objects.create(
        advertiser=advertiser, name="Winter", status=CampaignStatus.ACTIVE
    )
    campaign.placements.add(placement)
    return campaign


def html_ad(campaign: Campaign, html: str) -> Ad:
    return Ad.objects.create(
        campaign=campaign,
        name="Banner",
        kind=CreativeKind.HTML,
        width=300,
        height=250,
        click_url="https://outdoor.example/",
        html=html,
    )


@pytest.mark.django_db
def test_an_ad_created_in_code_is_stored_sanitised(campaign):
    ad = html_ad(campaign, RAW)
    assert Ad.objects.get(pk=ad.pk).html == "<div>a</div>"


@pytest.mark.django_db
def test_an_ad_edited_and_saved_is_stored_sanitised(campaign):
    ad = html_ad(campaign, "<p>Boots</p>")
    ad.html = '<p style="color:red;border-color:u\\72l(https://t.example/p.gif)">Boots</p>'
    ad.save()
    assert Ad.objects.get(pk=ad.pk).html == '<p style="color:red">Boots</p>'


@pytest.mark.django_db
def test_an_ad_loaded_from_a_fixture_is_stored_sanitised(campaign, tmp_path: Path):
    fixture = tmp_path / "ads.json"
    fields = {
        "campaign": campaign.pk,
        "name": "Loaded",
        "kind": "html",
        "click_url": "https://outdoor.example/",
        "html": RAW,
        "updated_at": "2026-01-01T00:00:00Z",  # loaddata saves raw: no auto_now
    }
    fixture.write_text(json.dumps([{"model": "ads.ad", "pk": 9001, "fields": fields}]))
    call_command("loaddata", str(fixture), verbosity=0)
    assert Ad.objects.get(pk=9001).html == "<div>a</div>"


@pytest.mark.django_db
@pytest.mark.mongodb
@pytest.mark.usefixtures("empty_delivery")
def test_what_is_published_is_sanitised(campaign):
    ad = html_ad(campaign, RAW)
    campaigns_publish(campaigns=[campaign])
    (document,) = DeliveryAdDocument.objects(ad_id=ad.pk)
    assert document.body["creative"]["html"] == "<div>a</div>"
    (live,) = snapshot.load().ads_by_site[campaign.placements.get().site_id]
    assert live.creative.html == "<div>a</div>"
