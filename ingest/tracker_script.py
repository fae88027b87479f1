"""The per-site tracker loader served at /t/<site public id>.js (and its config as JSON at
/t/<site public id>.json for apps that bundle the tracker).

The loader is tracker/dist/loader.js with the site's config written into it, so a page needs
no second request to learn the site's features and banner; it then loads the versioned,
long-cacheable bundles listed in the config. Used by ingest.views; the dashboard
(analytics.views) reads the manifest of built bundles too.

It belongs to the tracking side (ingest), above consent and tags: the config carries the
site's consent banner (consent.selectors) and its consent-gated tags (tags.selectors).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from django.conf import settings
from django.templatetags.static import static

from consent.scope import link_domains
from consent.selectors import banner_config, banner_for_site
from sites.models import Site
from tags.selectors import tags_config

CONFIG_PLACEHOLDER = "NABORIA_CONFIG"


class TrackerNotBuilt(RuntimeError):
    """tracker/dist is missing: run `make tracker` (make run and make test do)."""


@cache
def _built() -> tuple[dict[str, str], str]:
    dist = settings.TRACKER_DIST_DIR
    try:
        manifest = json.loads((dist / "manifest.json").read_text())
        loader = (dist / manifest["loader"]).read_text()
    except (OSError, KeyError, ValueError) as error:
        raise TrackerNotBuilt(f"tracker bundles missing in {dist}: {error}") from None
    return manifest, loader


def built_bundles() -> dict[str, str]:
    """The manifest of tracker/dist: bundle name -> file name (the dashboard uses it too)."""
    return _built()[0]


def tracker_config(*, site: Site, origin: str, bundled: bool) -> dict[str, Any]:
    """Everything the tracker and the banner need to know about the site (docs/tracker.md).
    ``bundled``: for an app that bundles the tracker (naboria.init), which loads the bundles
    after the first (the tracker) itself."""
    manifest, _ = _built()
    banner = banner_for_site(site=site)
    # Tags wait for purposes of Naboria's banner: without it they never run, so none is served.
    tags = tags_config(site=site) if banner else []
    # Cross-domain links (docs/cross-domain.md) rest on the banner's decisions, and the linker
    # must run before the tracker (it strips its parameter before the first pageview): only
    # through the loader, which loads the bundles in order.
    domains = link_domains(site.allowed_domains) if banner and not bundled else []
    bundles = [
        *(["linker"] if domains else []),
        "tracker",
        *(["ads"] if site.ads_enabled else []),
        *(["banner"] if banner else []),
        *(["tags"] if tags else []),
    ]
    tags_script = origin + static(f"naboria/{manifest['tags']}")
    return {
        "site": site.public_id,
        "host": origin,
        "features": {
            "analytics": site.analytics_enabled,
            "ads": site.ads_enabled,
            "outbound": site.track_outbound_links,
            "downloads": site.track_file_downloads,
            "engagement": site.track_engagement,
            "dnt": site.respect_do_not_track,
            "recs": site.recommendations_enabled,
        },
        "scripts": [origin + static(f"naboria/{manifest[name]}") for name in bundles],
        "banner": banner_config(banner=banner) if banner else None,
        "linkDomains": domains,
        "tags": tags,
        # Sites without tags: the loader loads the tags module only on a page that holds
        # blocking markup (data-naboria-purpose).
        "tagsScript": tags_script if banner and not tags else None,
        # The recommendations module (docs/recommendations.md): the loader loads it only in
        # browsers that have what it needs (ES modules era: fetch, promises, CustomEvent).
        "recsScript": (
            origin + static(f"naboria/{manifest['recs']}") if site.recommendations_enabled else None
        ),
    }


def loader_script(config: dict[str, Any]) -> str:
    _, loader = _built()
    # Every "<" escaped (JSON allows "\u003c" in strings, the only place it can be): a banner
    # text or a tag's field can then neither close an inline <script> ("</script>") nor put
    # the HTML parser in its escaped states ("<!--<script>"), which would swallow the page.
    config_json = json.dumps(config, separators=(",", ":")).replace("<", "\\u003c")
    return loader.replace(CONFIG_PLACEHOLDER, config_json, 1)
