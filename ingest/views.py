"""The per-site tracker loader (/t/<site public id>.js) and its JSON config (/t/<id>.json):
Django views (unlike the tracking endpoints), served with cache headers (ingest.tracker_script
builds them), compressed with Brotli or gzip (ingest.compression)."""

from __future__ import annotations

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from ingest.compression import compressed
from ingest.tracker_script import loader_script, tracker_config
from sites.models import Site

# Browsers and CDNs keep the loader this long: a change in the admin reaches visitors within it.
LOADER_MAX_AGE_SECONDS = 300
CONFIG_CACHE_SECONDS = 60


def _config(request: HttpRequest, public_id: str, *, bundled: bool) -> dict[str, object] | None:
    origin = request.build_absolute_uri("/").rstrip("/")
    key = f"tracker-config:{public_id}:{origin}:{bundled}"
    config = cache.get(key)
    if config is None:
        site = Site.objects.filter(public_id=public_id).first()
        if site is None:
            return None
        config = tracker_config(site=site, origin=origin, bundled=bundled)
        cache.set(key, config, CONFIG_CACHE_SECONDS)
    return config


@require_GET
@compressed
def tracker_loader(request: HttpRequest, public_id: str) -> HttpResponse:
    config = _config(request, public_id, bundled=False)
    if config is None:
        response = HttpResponse(
            f"/* naboria: unknown site {public_id!r} */", status=404, content_type="text/javascript"
        )
    else:
        response = HttpResponse(loader_script(config), content_type="text/javascript")
        response["Cache-Control"] = f"public, max-age={LOADER_MAX_AGE_SECONDS}"
    return response


@require_GET
@compressed
def tracker_config_json(request: HttpRequest, public_id: str) -> JsonResponse:
    """The same config for apps that bundle the tracker and call naboria.init({site, host})."""
    config = _config(request, public_id, bundled=True)
    if config is None:
        response = JsonResponse({"error": f"unknown site {public_id!r}"}, status=404)
    else:
        response = JsonResponse(config)
        response["Cache-Control"] = f"public, max-age={LOADER_MAX_AGE_SECONDS}"
    # Public settings, read by any page that embeds the site.
    response["Access-Control-Allow-Origin"] = "*"
    return response
