"""Creative images served from Naboria's origin: the visitor's browser never fetches from an
advertiser's server, before ads consent or after.

- ``first_party_asset_url(host, url)`` is what the renderer hands out instead of an image's
  address (the ``image_url`` of image and native ads); ``rewrite_html_assets(html, host)``
  does the same for each ``<img src>`` of an HTML creative, sanitising it again on the way
  (ads.sanitising).
- ``GET /ads/asset?u=<token>`` (``ASSET_ENDPOINTS``, a lean endpoint table like
  ads.endpoints) fetches the image once, server-side, and serves it with a year-long
  ``immutable`` cache lifetime. The advertiser's server sees Naboria, never the visitor: no
  IP address, user agent, referrer or cookie of theirs.

It is not an open proxy. The token is the image's address signed with Django's signing
(HMAC over SECRET_KEY, a salt of its own, so no other token of Naboria is accepted): only
addresses a creative holds are fetched. The token has no timestamp, so one address always
makes the same URL, which browsers and proxies may cache for good: to change an image, give it
a new address. Every fetch, and every redirect it follows (at most MAX_REDIRECTS), resolves
the host once, refuses it unless every address is public (no loopback, private, link-local,
shared, reserved or multicast range, nor one embedded in an IPv6 address) and connects to
the address it checked, so DNS cannot point the connection elsewhere in between. Only PNG,
JPEG, GIF, WebP and AVIF are served (SVG, which can hold scripts and links, is refused): the
declared type must be one of them and the first bytes must show one, which is the type served.
At most MAX_ASSET_BYTES; within FETCH_SECONDS (checked between redirects and between chunks
of the body: a connection waits at most CONNECT_SECONDS, a read READ_SECONDS).

Fetched images are kept on disk under ``<VAR_DIR>/ad_assets``, one file per address (named
by its SHA-256), the least recently served removed beyond CACHE_MAX_BYTES. Concurrent
requests for an image being fetched wait for that one fetch; a failed fetch is answered from
memory for FAILURE_SECONDS, so a broken creative does not cost a fetch per impression.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import ipaddress
import logging
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, urlencode, urljoin, urlsplit

import urllib3
from django.conf import settings
from django.core import signing

from ads.sanitising import sanitise_creative_html
from ingest.http import EndpointTable, Refusal, TrackingRequest, TrackingResponse

logger = logging.getLogger(__name__)

PATH = "/ads/asset"
ASSET_SALT = "naboria.ads.asset"
MAX_ASSET_BYTES = 2 * 1024 * 1024
CONNECT_SECONDS = 3.0
READ_SECONDS = 5.0
FETCH_SECONDS = 10.0
MAX_REDIRECTS = 3
CACHE_MAX_BYTES = 256 * 1024 * 1024
FAILURE_SECONDS = 60.0
_MAX_FAILURES_KEPT = 4096
_CHUNK_BYTES = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "Naboria-ad-assets/1"
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif"})
_KINDS = "PNG, JPEG, GIF, WebP or AVIF"
SERVED_HEADERS = {
    # The URL names the image for good (see the module's docstring).
    "cache-control": "public, max-age=31536000, immutable",
    "x-content-type-options": "nosniff",
    # Shown in other origins' pages (the publisher's, an ad's sandboxed frame).
    "cross-origin-resource-policy": "cross-origin",
}
# IPv6 addresses that reach an IPv4 address through a NAT64 gateway (RFC 6052).
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


@dataclass(frozen=True)
class Asset:
    content_type: str
    body: bytes


def first_party_asset_url(host: str, url: str) -> str:
    """The address on ``host`` (``scheme://host`` of the request) that serves the image at
    ``url``; "" for what is not an absolute http(s) URL, which is not served."""
    return _asset_url(host, url, settings.SECRET_KEY)


def rewrite_html_assets(html: str, host: str) -> str:
    """The HTML of a creative, sanitised, with each ``<img src>`` served from ``host``."""
    return _rewritten(html, host, settings.SECRET_KEY) if html else ""


# The renderer hands out the same few creatives at every delivery: each is signed and
# rewritten once per host. SECRET_KEY is part of the key, the signatures depend on it.
@functools.lru_cache(maxsize=512)
def _rewritten(html: str, host: str, secret_key: str) -> str:
    return sanitise_creative_html(
        html, image_source=lambda source: _asset_url(host, source, secret_key) or None
    )


@functools.lru_cache(maxsize=4096)
def _asset_url(host: str, url: str, secret_key: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return ""
    token = signing.Signer(key=secret_key, salt=ASSET_SALT).sign_object(url, compress=True)
    return f"{host}{PATH}?{urlencode({'u': token})}"


def _signed_url(token: str) -> str:
    try:
        # Verified against SECRET_KEY and its fallbacks, as Django's signing does.
        url = signing.Signer(salt=ASSET_SALT).unsign_object(token)
    except signing.BadSignature:
        url = None
    if not isinstance(url, str):
        raise Refusal(400, "invalid asset address: only images of Naboria's creatives are served")
    return url


async def asset(request: TrackingRequest) -> TrackingResponse:
    found = await asset_get(_signed_url(request.query.get("u", "")))
    return TrackingResponse(
        200, found.body, content_type=found.content_type, headers=dict(SERVED_HEADERS)
    )


ASSET_ENDPOINTS: EndpointTable = {PATH: (asset, frozenset({"GET"}))}


# In flight by cache key: concurrent requests for one image share its fetch.
_fetching: dict[str, asyncio.Task[Asset]] = {}
# Failed fetches by cache key: (when, status, message).
_failures: dict[str, tuple[float, int, str]] = {}


async def asset_get(url: str) -> Asset:
    """The image at ``url``: from the disk cache, or fetched (once, whoever else asks for it
    meanwhile) off the event loop; Refusal when it cannot be served."""
    key = hashlib.sha256(url.encode()).hexdigest()
    failed = _failures.get(key)
    if failed is not None and time.monotonic() - failed[0] < FAILURE_SECONDS:
        raise Refusal(failed[1], failed[2])
    loop = asyncio.get_running_loop()
    task = _fetching.get(key)
    if task is None or task.get_loop() is not loop:
        task = loop.create_task(asyncio.to_thread(_cached_or_fetched, url, key))
        _fetching[key] = task
        task.add_done_callback(functools.partial(_fetch_done, key))
    # Shielded: a visitor who leaves does not cancel the fetch the others wait for.
    return await asyncio.shield(task)


def _fetch_done(key: str, task: asyncio.Task[Asset]) -> None:
    if _fetching.get(key) is task:
        del _fetching[key]
    error = None if task.cancelled() else task.exception()
    if isinstance(error, Refusal):
        if len(_failures) >= _MAX_FAILURES_KEPT:
            _failures.clear()
        _failures[key] = (time.monotonic(), error.status, error.message)


def _cache_directory() -> Path:
    return Path(settings.VAR_DIR) / "ad_assets"


def _cached_or_fetched(url: str, key: str) -> Asset:
    path = _cache_directory() / key
    cached = _read_cached(path)
    if cached is not None:
        return cached
    try:
        fetched = _fetch(url)
    except Refusal as refusal:
        logger.warning("ad image %s not served: %s", url, refusal.message)
        raise
    try:
        _store(path, fetched)
    except OSError:
        # Served all the same; the next request fetches it again.
        logger.warning("ad image %s not cached", url, exc_info=True)
    return fetched


def _read_cached(path: Path) -> Asset | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError:
        # Unreadable: fetched again (and rewritten, which may repair it).
        logger.warning("cached ad image %s unreadable", path, exc_info=True)
        return None
    content_type, _, body = data.partition(b"\n")
    if content_type.decode("latin-1") not in IMAGE_TYPES:
        return None
    # The modification time orders the files for eviction: least recently served first.
    with contextlib.suppress(OSError):
        os.utime(path)
    return Asset(content_type.decode("latin-1"), body)


def _store(path: Path, fetched: Asset) -> None:
    """Write the file whole or not at all (renamed into place), then evict beyond the bound."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".", delete=False) as file:
        file.write(fetched.content_type.encode() + b"\n" + fetched.body)
    os.replace(file.name, path)
    _evict(path.parent)


def _evict(directory: Path) -> None:
    entries = []
    with os.scandir(directory) as scan:
        for entry in scan:
            with contextlib.suppress(FileNotFoundError):
                stat = entry.stat()
                entries.append((stat.st_mtime_ns, stat.st_size, entry.path))
    total = sum(size for _, size, _ in entries)
    for _, size, name in sorted(entries):
        if total <= CACHE_MAX_BYTES:
            break
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)
        total -= size


def resolve(host: str, port: int) -> list[str]:
    """The addresses of ``host``, as the system resolver gives them."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def address_is_public(address: str) -> bool:
    """Whether ``address`` is a public unicast address, and so is any IPv4 address it embeds
    (IPv4-mapped, 6to4, NAT64)."""
    ip = ipaddress.ip_address(address.partition("%")[0])
    reached: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        reached += [embedded for embedded in (ip.ipv4_mapped, ip.sixtofour) if embedded]
        if ip in _NAT64:
            reached.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return all(each.is_global and not each.is_multicast for each in reached)


def _public_addresses(parts: SplitResult) -> list[str]:
    host = parts.hostname or ""
    try:
        addresses = list(dict.fromkeys(resolve(host, parts.port or _default_port(parts))))
    except (OSError, UnicodeError):
        raise Refusal(502, f"the image's host {host} cannot be resolved") from None
    if not addresses or not all(address_is_public(address) for address in addresses):
        raise Refusal(403, f"the image's host {host} is not a public address: not fetched")
    return addresses


def _default_port(parts: SplitResult) -> int:
    return 443 if parts.scheme == "https" else 80


def _http_url(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port out of range)
    except ValueError:
        raise Refusal(403, "not an http(s) image address") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise Refusal(403, "not an http(s) image address")
    return parts


def _fetch(url: str) -> Asset:
    deadline = time.monotonic() + FETCH_SECONDS
    for _ in range(MAX_REDIRECTS + 1):
        if time.monotonic() > deadline:
            raise Refusal(504, "the image's server did not answer in time")
        parts = _http_url(url)
        with _response(parts, _public_addresses(parts)) as response:
            if response.status in _REDIRECTS and response.headers.get("location"):
                url = urljoin(url, response.headers["location"])
                continue
            if response.status != 200:
                raise Refusal(502, f"the image's server answered {response.status}")
            return _image(response, deadline)
    raise Refusal(502, f"the image's server redirected more than {MAX_REDIRECTS} times")


@contextlib.contextmanager
def _response(parts: SplitResult, addresses: list[str]) -> Iterator[urllib3.BaseHTTPResponse]:
    """The response of GET ``parts`` from the first of ``addresses`` that connects: the
    connection goes to the address that was checked, with the URL's host name in the Host
    header and, for HTTPS, in SNI and the certificate check."""
    host = parts.hostname or ""
    port = parts.port or _default_port(parts)
    name = f"[{host}]" if ":" in host else host
    headers = {
        "Host": f"{name}:{parts.port}" if parts.port else name,
        "User-Agent": USER_AGENT,
        "Accept": ", ".join(sorted(IMAGE_TYPES)),
        "Accept-Encoding": "identity",
    }
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    timeout = urllib3.Timeout(connect=CONNECT_SECONDS, read=READ_SECONDS)
    for address in addresses:
        pool: urllib3.HTTPConnectionPool = (
            urllib3.HTTPSConnectionPool(
                address,
                port,
                timeout=timeout,
                retries=False,
                cert_reqs="CERT_REQUIRED",
                server_hostname=host,
                assert_hostname=host,
            )
            if parts.scheme == "https"
            else urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False)
        )
        try:
            response = pool.urlopen(
                "GET",
                target,
                headers=headers,
                redirect=False,
                assert_same_host=False,
                preload_content=False,
                decode_content=False,
            )
        except (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError):
            pool.close()
            continue
        except (urllib3.exceptions.HTTPError, OSError) as error:
            pool.close()
            raise _unreachable(error) from None
        try:
            yield response
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise _unreachable(error) from None
        finally:
            response.release_conn()
            pool.close()
        return
    raise Refusal(502, f"the image's server {host} could not be reached")


def _unreachable(error: Exception) -> Refusal:
    if isinstance(error, urllib3.exceptions.TimeoutError | TimeoutError):
        return Refusal(504, "the image's server did not answer in time")
    return Refusal(502, f"the image's server failed: {type(error).__name__}")


def _image(response: urllib3.BaseHTTPResponse, deadline: float) -> Asset:
    declared = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    if declared not in IMAGE_TYPES:
        raise Refusal(415, f"not an image Naboria serves ({declared or 'no type'}): {_KINDS}")
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_ASSET_BYTES:
        raise Refusal(413, f"image larger than {MAX_ASSET_BYTES} bytes")
    chunks = []
    size = 0
    for chunk in response.stream(_CHUNK_BYTES, decode_content=False):
        size += len(chunk)
        if size > MAX_ASSET_BYTES:
            raise Refusal(413, f"image larger than {MAX_ASSET_BYTES} bytes")
        if time.monotonic() > deadline:
            raise Refusal(504, "the image's server did not answer in time")
        chunks.append(chunk)
    body = b"".join(chunks)
    sniffed = _sniffed_image_type(body)
    if sniffed is None:
        raise Refusal(415, f"the image's content is not one Naboria serves: {_KINDS}")
    return Asset(sniffed, body)


def _sniffed_image_type(body: bytes) -> str | None:
    """The type of image ``body`` is by its first bytes, among IMAGE_TYPES."""
    if body.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if body.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if body.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if body[:4] == b"RIFF" and body[8:12] == b"WEBP":
        return "image/webp"
    # ISO BMFF: a "ftyp" box whose major or one of its compatible brands is AVIF's.
    if body[4:8] == b"ftyp":
        end = int.from_bytes(body[:4], "big")
        compatible = {body[index : index + 4] for index in range(16, end, 4)}
        if {body[8:12], *compatible} & {b"avif", b"avis"}:
            return "image/avif"
    return None
