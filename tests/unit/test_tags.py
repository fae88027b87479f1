"""The tag manager's server side (tags): what each template accepts (ids, URLs, what a custom
script may contain), purposes bound to the site's own banner, and the tags as the tracker
loader serves them (only enabled tags with purposes, only on sites whose banner is on, with the
tags bundle)."""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache
from django.core.exceptions import ValidationError

from consent.models import BannerText, ConsentPurpose
from consent.services import consent_banner_ensure
from tags.models import Tag, TagTemplate
from tags.selectors import tags_config
from tags.services import demo_tags_ensure, tag_create
from tests.factories import SiteFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(site):
    site.consent_banner_enabled = True
    site.save()
    consent_banner_ensure(site=site)
    cache.clear()
    return site


def errors_of(shop, **fields) -> dict[str, list[str]]:
    fields.setdefault("name", "A tag")
    fields.setdefault("purposes", ["ads"])
    with pytest.raises(ValidationError) as raised:
        tag_create(site=shop, **fields)
    return raised.value.message_dict


@pytest.mark.parametrize(
    ("template", "good", "bad"),
    [
        ("ga4", "G-2X7ABC9DEF", ["UA-12345-1", "g-2x7abc9def", "G-", "G-ABC<script>"]),
        ("google_ads", "AW-123456789", ["AW-12ab", "123456789", "GT-123456789"]),
        ("meta_pixel", "1234567890123456", ["12345", "12345678901234567", "1234567890abcde"]),
        ("linkedin", "514011", ["514011x", "12", "a514011"]),
    ],
)
def test_vendor_templates_take_an_id_of_the_vendors_format(shop, template, good, bad):
    tag = tag_create(
        site=shop, name=template, template=template, purposes=["ads"], tracking_id=good
    )
    assert tag.tracking_id == good
    for value in bad:
        assert "tracking_id" in errors_of(shop, template=template, tracking_id=value)
    assert "tracking_id" in errors_of(shop, template=template)  # needed
    # Fields a template does not use are refused, not silently ignored.
    assert "url" in errors_of(
        shop, template=template, tracking_id=good, url="https://x.example/a.js"
    )


@pytest.mark.parametrize(
    "url",
    [
        "/js/chat.js",
        "https://cdn.example.com/widget.js?v=2",
        "https://cdn.example.com:8443/widget.js",
    ],
)
def test_urls_are_https_or_paths_on_the_site(shop, url):
    tag = tag_create(site=shop, name="Widget", template="script", purposes=["ads"], url=url)
    assert tag.url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://cdn.example.com/widget.js",
        "javascript:alert(1)",
        "data:text/javascript,alert(1)",
        "//cdn.example.com/widget.js",
        "https://user:pass@cdn.example.com/widget.js",
        "https:///widget.js",
        "https://cdn.example.com/a b.js",
        "https://cdn.example.com/a\\b.js",
        "widget.js",
        "https://cdn.example.com:99999/a.js",
        "https://cdn.example.com/" + "a" * 2000,
    ],
)
def test_other_urls_are_refused(shop, url):
    for template, extra in [("script", {}), ("iframe", {"title": "Map"}), ("pixel", {})]:
        assert "url" in errors_of(shop, template=template, url=url, **extra)


@pytest.mark.parametrize(
    ("code", "why"),
    [
        ("<script>alert(1)</script>", "JavaScript only"),
        ("x = 1 </SCRIPT >", "JavaScript only"),
        ('var a = 1; <img src="https://t.example/p.gif">', "JavaScript only"),
        ("<!-- a pasted snippet -->", "JavaScript only"),
        ("<noscript>x</noscript>", "JavaScript only"),
        ("document.write('<p>')", "document.write"),
        ("document . writeln('x')", "document.write"),
        ("document['write']('x')", "document.write"),
        ("x=1;" * 6000, "at most 20,000"),
    ],
)
def test_custom_script_code_is_javascript_that_keeps_the_page(shop, code, why):
    (message,) = errors_of(shop, template="script", code=code)["code"]
    assert why in message


def test_custom_script_code_may_compare_and_use_the_dom(shop):
    code = "for (var i = 0; i<n; i++) { if (a < b) document.body.appendChild(el) }"
    assert tag_create(site=shop, name="Loop", template="script", purposes=["ads"], code=code)
    assert "code" in errors_of(shop, template="script")  # code, a URL or both


def test_iframes_need_a_title_and_an_element_id_for_a_container(shop):
    assert "title" in errors_of(shop, template="iframe", url="https://maps.example/embed")
    errors = errors_of(
        shop, template="iframe", url="https://maps.example/embed", title="Map", container="#map"
    )
    assert "container" in errors
    tag = tag_create(
        site=shop,
        name="Map",
        template="iframe",
        purposes=["ads"],
        url="https://maps.example/embed",
        title="Map",
        container="store-map",
        width=320,
        height=160,
    )
    assert tag.container == "store-map"


def test_cookie_names_are_names_or_prefixes(shop):
    assert "cookies" in errors_of(shop, template="pixel", url="/p.gif", cookies=["a b"])
    assert "cookies" in errors_of(shop, template="pixel", url="/p.gif", cookies="_chat")
    tag_create(
        site=shop, name="P", template="pixel", purposes=["ads"], url="/p.gif", cookies=["_c*"]
    )


def test_purposes_are_the_sites_own_banners(shop):
    other = SiteFactory(organization=shop.organization, consent_banner_enabled=True)
    banner = consent_banner_ensure(site=other)
    ConsentPurpose.objects.create(banner=banner, key="chat", name="Chat")
    pixel = {"template": "pixel", "url": "/p.gif"}
    assert (
        "not purposes of this site's banner: chat"
        in errors_of(shop, purposes=["chat"], **pixel)["purposes"][0]
    )
    assert "purposes" in errors_of(shop, purposes=[], **pixel)
    assert "purposes" in errors_of(shop, purposes="ads", **pixel)
    bare = SiteFactory(organization=shop.organization)
    assert "no consent banner" in errors_of(bare, **pixel)["purposes"][0]
    # Several purposes: all of them are needed (and each is kept once).
    tag = tag_create(site=shop, name="Both", purposes=["analytics", "ads", "ads"], **pixel)
    assert tag.purposes == ["analytics", "ads"]


def test_vendor_tags_cannot_pass_for_strictly_necessary(shop):
    errors = errors_of(shop, template="ga4", tracking_id="G-2X7ABC9DEF", purposes=["necessary"])
    assert "not strictly necessary" in errors["purposes"][0]
    # A site's own script may (a load balancer's, say); with a chosen purpose so may GA4.
    tag_create(site=shop, name="LB", template="script", purposes=["necessary"], code="x()")
    tag_create(
        site=shop,
        name="GA",
        template="ga4",
        tracking_id="G-2X7ABC9DEF",
        purposes=["necessary", "analytics"],
    )


def test_config_lists_enabled_tags_in_order_with_their_cookies(shop):
    ga = tag_create(
        site=shop,
        name="GA",
        template="ga4",
        purposes=["analytics"],
        tracking_id="G-2X7ABC9DEF",
        order=2,
    )
    chat = tag_create(
        site=shop,
        name="Chat",
        template="script",
        purposes=["analytics", "ads"],
        url="https://chat.example/w.js",
        code="Chat.start()",
        cookies=["_chat*"],
        reload_on_withdrawal=True,
        order=1,
    )
    tag_create(
        site=shop, name="Off", template="pixel", purposes=["ads"], url="/p.gif", enabled=False
    )
    Tag.objects.create(site=shop, name="Forced in", template="pixel", url="/q.gif", purposes=[])
    assert tags_config(site=shop) == [
        {
            "id": chat.pk,
            "type": "script",
            "purposes": ["analytics", "ads"],
            "cookies": ["_chat*"],
            "reload": True,
            "url": "https://chat.example/w.js",
            "code": "Chat.start()",
        },
        {
            "id": ga.pk,
            "type": "ga4",
            "purposes": ["analytics"],
            "cookies": ["_ga", "_ga_*", "_gid", "_gat*"],
            "reload": False,
            "trackingId": "G-2X7ABC9DEF",
        },
    ]


def loader_config(client, site) -> dict:
    script = client.get(f"/t/{site.public_id}.js").content.decode()
    config, _ = json.JSONDecoder().raw_decode(script, script.index('{"site":'))
    return config


def bundle_names(config) -> list[str]:
    return [url.rsplit("/", 1)[1].split(".")[0] for url in config["scripts"]]


def test_the_loader_loads_the_tags_module_only_for_sites_with_tags(client, shop):
    config = loader_config(client, shop)
    assert config["tags"] == []
    assert bundle_names(config) == ["tracker", "ads", "banner"]
    # Without tags, the module is named for pages with blocking markup only.
    assert config["tagsScript"].rsplit("/", 1)[1].startswith("tags.")
    tag_create(site=shop, name="Pixel", template="pixel", purposes=["ads"], url="/p.gif")
    cache.clear()
    config = loader_config(client, shop)
    assert [tag["type"] for tag in config["tags"]] == ["pixel"]
    assert bundle_names(config) == ["tracker", "ads", "banner", "tags"]
    assert config["tagsScript"] is None


def test_no_tags_are_served_without_the_banner(client, shop):
    tag_create(site=shop, name="Pixel", template="pixel", purposes=["ads"], url="/p.gif")
    shop.consent_banner_enabled = False
    shop.save()
    cache.clear()
    config = loader_config(client, shop)
    assert (config["tags"], config["tagsScript"]) == ([], None)
    assert bundle_names(config) == ["tracker", "ads"]


def test_no_text_can_close_or_escape_the_loaders_script(client, shop):
    tag_create(
        site=shop, name="S", template="script", purposes=["ads"], code="el.innerHTML = '<b>x</b>'"
    )
    BannerText.objects.filter(banner__site=shop).update(body="<!--<script>")
    cache.clear()
    script = client.get(f"/t/{shop.public_id}.js").content.decode()
    start = script.index('{"site":')
    config, end = json.JSONDecoder().raw_decode(script, start)
    assert "<" not in script[start:end]  # escaped as \u003c, which JSON reads back
    assert config["tags"][0]["code"] == "el.innerHTML = '<b>x</b>'"
    assert config["banner"]["texts"]["en"]["body"] == "<!--<script>"


def test_demo_tags_are_made_once(shop):
    first = demo_tags_ensure(site=shop)
    assert [tag.template for tag in first] == [TagTemplate.SCRIPT, TagTemplate.IFRAME]
    assert demo_tags_ensure(site=shop) == first
    assert Tag.objects.filter(site=shop).count() == 2
