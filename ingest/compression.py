"""Compression of the per-site loader and its JSON config (ingest.views), whose bodies Django
builds per site and per request (whitenoise compresses the static bundles, not these).

Brotli when the browser accepts it, else gzip, else the body as it is; ``Vary:
Accept-Encoding`` either way so that caches keep one copy per encoding. The bodies hold no
secret, so compressing them leaks nothing (BREACH needs a secret next to attacker input).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

import brotli
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_vary_headers
from django.utils.text import compress_string

# Below this, compression costs more than it saves (Django's GZipMiddleware uses 200 too).
MIN_BYTES = 200
PREFERRED = ("br", "gzip")


def _accepted(request: HttpRequest) -> str | None:
    """The first of PREFERRED that Accept-Encoding names without q=0."""
    accepted = set()
    for item in request.headers.get("Accept-Encoding", "").lower().split(","):
        name, _, parameters = item.partition(";")
        quality = parameters.strip().removeprefix("q=").strip() if parameters else "1"
        try:
            if float(quality) > 0:
                accepted.add(name.strip())
        except ValueError:
            continue
    return next((encoding for encoding in PREFERRED if encoding in accepted), None)


def compress_response(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    if response.streaming or response.has_header("Content-Encoding"):
        return response
    patch_vary_headers(response, ("Accept-Encoding",))
    encoding = _accepted(request)
    if encoding is None or len(response.content) < MIN_BYTES:
        return response
    if encoding == "br":
        response.content = brotli.compress(response.content, quality=5)
    else:
        response.content = compress_string(response.content)
    response["Content-Encoding"] = encoding
    response["Content-Length"] = str(len(response.content))
    return response


def compressed(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return compress_response(request, view(request, *args, **kwargs))

    return wrapper
