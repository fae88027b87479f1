"""Creative images served from Naboria's origin (ads.assets): signed addresses only, images
only, a size limit, a time limit, no private addresses (SSRF), a bounded disk cache that
fetches each image once; and the URLs the renderer hands out instead of the advertiser's.

The advertiser's server is a real HTTP server in a thread of this process, on the loopback
interface: which the endpoint rightly refuses to fetch from. The ``advertiser_host`` fixture
is the test stand-in that lets it: read its docstring.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core import signing

from ads import assets
from ads.assets import ASSET_ENDPOINTS, first_party_asset_url, rewrite_html_assets
from ingest.asgi import lean_application
from ingest.http import TRANSPARENT_GIF
from tests.tracking_client import TrackingClient

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
NABORIA = "https://ads.naboria.example"
ADVERTISER_HOST = "images.advertiser.test"


@dataclass
class Route:
    body: bytes
    content_type: str = "image/png"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    with_length: bool = True  # False: no Content-Length, the body ends when the server closes


@dataclass
class Upstream:
    """The advertiser's image server: what it serves by path, and the (path, Host) of each
    request it received."""

    port: int = 0
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def url(self, path: str, host: str = ADVERTISER_HOST) -> str:
        return f"http://{host}:{self.port}{path}"

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # The endpoint hangs up on slow, oversized and untrusted answers: no error of the test.
        if not isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError):
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serving(tls: ssl.SSLContext | None = None) -> Iterator[Upstream]:
    """The advertiser's server, on a free loopback port; over TLS with ``tls``."""
    state = Upstream()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            state.requests.append((self.path, self.headers.get("Host", "")))
            route = state.routes.get(self.path, Route(b"not found", "text/plain", 404))
            time.sleep(route.delay)
            self.send_response(route.status)
            self.send_header("Content-Type", route.content_type)
            for name, value in route.headers.items():
                self.send_header(name, value)
            if route.with_length:
                self.send_header("Content-Length", str(len(route.body)))
            else:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(route.body)

        def log_message(self, *args: object) -> None:
            pass

    server = QuietServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    state.port = server.server_address[1]
    # Polled often: shutting it down waits for the next poll.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with serving() as state:
        yield state


@pytest.fixture(autouse=True)
def fresh_assets(settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty disk cache and no remembered failures."""
    settings.VAR_DIR = tmp_path
    monkeypatch.setattr(assets, "_failures", {})
    return tmp_path / "ad_assets"


@pytest.fixture
def advertiser_host(monkeypatch: pytest.MonkeyPatch, upstream: Upstream) -> Upstream:
    """TEST STAND-IN. The advertiser's server of these tests listens on 127.0.0.1, which the
    endpoint refuses like any loopback address. Two substitutions make it a public host:
    ``images.advertiser.test`` resolves to 127.0.0.1 (no DNS knows the name), and 127.0.0.1
    counts as public. Every other name resolves, and every other address is judged, as in
    production; the endpoint still connects to the address the resolver gave (that a name
    no DNS knows is fetched shows the connection is pinned to it)."""
    real_resolve, real_is_public = assets.resolve, assets.address_is_public

    def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"] if host == ADVERTISER_HOST else real_resolve(host, port)

    monkeypatch.setattr(assets, "resolve", resolve)
    monkeypatch.setattr(
        assets,
        "address_is_public",
        lambda address: address == "127.0.0.1" or real_is_public(address),
    )
    return upstream


@pytest.fixture
def client() -> TrackingClient:
    return TrackingClient(lean_application(ASSET_ENDPOINTS))


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["u"][0]


def fetch(client: TrackingClient, image_url: str):
    return client.get(local(first_party_asset_url(NABORIA, image_url)))


def test_a_signed_image_is_served_from_naboria_and_fetched_once(
    client, advertiser_host, fresh_assets
):
    image_url = advertiser_host.url("/banner.png?campaign=7")
    advertiser_host.routes["/banner.png?campaign=7"] = Route(PNG)

    asset_url = first_party_asset_url(NABORIA, image_url)
    assert asset_url.startswith(f"{NABORIA}/ads/asset?u=")
    for _ in range(3):
        response = client.get(local(asset_url))
        assert response.status_code == 200, response.content
        assert response["content-type"] == "image/png"
        assert response.content == PNG
        assert response["cache-control"] == "public, max-age=31536000, immutable"
        assert response["x-content-type-options"] == "nosniff"
    # Fetched once, from the address the resolver gave, under the advertiser's host name.
    assert advertiser_host.requests == [
        ("/banner.png?campaign=7", f"{ADVERTISER_HOST}:{advertiser_host.port}")
    ]
    assert len(list(fresh_assets.iterdir())) == 1


def test_the_type_served_is_the_one_the_bytes_are(client, advertiser_host):
    # A GIF its server calls a PNG is served as what it is.
    advertiser_host.routes["/pixel"] = Route(TRANSPARENT_GIF, content_type="image/png")
    response = fetch(client, advertiser_host.url("/pixel"))
    assert (response.status_code, response["content-type"]) == (200, "image/gif")
    assert response.content == TRANSPARENT_GIF


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "image/jpeg", id="jpeg"),
        pytest.param(b"RIFF\x1a\x00\x00\x00WEBPVP8 \x0e\x00\x00\x00", "image/webp", id="webp"),
        pytest.param(
            b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", "image/avif", id="avif"
        ),
        pytest.param(
            b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1avif", "image/avif", id="avif-brand"
        ),
    ],
)
def test_each_image_type_is_served_as_what_it_is(client, advertiser_host, body, content_type):
    advertiser_host.routes["/creative"] = Route(body, content_type=content_type)
    response = fetch(client, advertiser_host.url("/creative"))
    assert (response.status_code, response["content-type"]) == (200, content_type)


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"), id="signature"),
        pytest.param(
            lambda token: signing.Signer(salt="naboria.ads.tracking").sign_object(
                signing.Signer(salt=assets.ASSET_SALT).unsign_object(token)
            ),
            id="another-salt",
        ),
        pytest.param(
            lambda token: signing.Signer(salt=assets.ASSET_SALT).unsign_object(token),
            id="the-bare-url",
        ),
        pytest.param(lambda token: "", id="none"),
    ],
)
def test_only_addresses_naboria_signed_are_fetched(client, advertiser_host, tamper):
    advertiser_host.routes["/banner.png"] = Route(PNG)
    token = token_of(first_party_asset_url(NABORIA, advertiser_host.url("/banner.png")))
    response = client.get("/ads/asset", {"u": tamper(token)})
    assert response.status_code == 400
    assert "only images of Naboria's creatives" in response.json()["error"]
    assert advertiser_host.requests == []


@pytest.mark.parametrize(
    "route",
    [
        pytest.param(Route(b"<html>hi</html>", content_type="text/html"), id="html"),
        pytest.param(Route(b"<html>hi</html>", content_type="image/png"), id="html-called-png"),
        pytest.param(
            Route(b'<svg xmlns="http://www.w3.org/2000/svg"/>', content_type="image/svg+xml"),
            id="svg",
        ),
        pytest.param(Route(PNG, content_type="application/octet-stream"), id="untyped"),
    ],
)
def test_what_is_not_an_image_is_refused(client, advertiser_host, route):
    advertiser_host.routes["/banner"] = route
    response = fetch(client, advertiser_host.url("/banner"))
    assert response.status_code == 415
    assert "PNG, JPEG, GIF, WebP or AVIF" in response.json()["error"]


@pytest.mark.parametrize("with_length", [True, False], ids=["declared", "streamed"])
def test_an_image_over_the_size_limit_is_refused(client, advertiser_host, with_length):
    oversized = PNG + b"\0" * (assets.MAX_ASSET_BYTES + 1 - len(PNG))
    advertiser_host.routes["/huge.png"] = Route(oversized, with_length=with_length)
    response = fetch(client, advertiser_host.url("/huge.png"))
    assert response.status_code == 413
    assert response.json() == {"error": "image larger than 2097152 bytes"}


def test_an_image_at_the_size_limit_is_served(client, advertiser_host):
    largest = PNG + b"\0" * (assets.MAX_ASSET_BYTES - len(PNG))
    advertiser_host.routes["/large.png"] = Route(largest)
    response = fetch(client, advertiser_host.url("/large.png"))
    assert (response.status_code, len(response.content)) == (200, assets.MAX_ASSET_BYTES)


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/banner.png",
        "http://localhost:{port}/banner.png",
        "http://[::1]:{port}/banner.png",
        "http://[::ffff:127.0.0.1]:{port}/banner.png",
        "http://[2002:7f00:1::]:{port}/banner.png",  # 6to4 around 127.0.0.1
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/banner.png",
        "http://192.168.1.1/banner.png",
        "http://100.64.0.1/banner.png",
    ],
)
def test_private_addresses_are_never_fetched(client, upstream, target):
    upstream.routes["/banner.png"] = Route(PNG)
    response = fetch(client, target.format(port=upstream.port))
    assert response.status_code == 403
    assert "is not a public address: not fetched" in response.json()["error"]
    assert upstream.requests == []


def test_a_name_resolving_to_any_private_address_is_refused(client, advertiser_host, monkeypatch):
    # DNS that answers a public and a private address: the connection could go to either.
    monkeypatch.setattr(assets, "resolve", lambda host, port: ["127.0.0.1", "10.0.0.7"])
    advertiser_host.routes["/banner.png"] = Route(PNG)
    response = fetch(client, advertiser_host.url("/banner.png"))
    assert response.status_code == 403
    assert advertiser_host.requests == []


def test_redirects_are_followed_to_public_addresses_only(client, advertiser_host):
    advertiser_host.routes["/banner.png"] = Route(PNG)
    advertiser_host.routes["/moved"] = Route(b"", status=301, headers={"Location": "/banner.png"})
    advertiser_host.routes["/to-metadata"] = Route(
        b"", status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
    )
    advertiser_host.routes["/to-lan"] = Route(
        b"", status=307, headers={"Location": "http://10.1.2.3/banner.png"}
    )

    moved = fetch(client, advertiser_host.url("/moved"))
    assert (moved.status_code, moved.content) == (200, PNG)
    for path in ("/to-metadata", "/to-lan"):
        assert fetch(client, advertiser_host.url(path)).status_code == 403
    assert advertiser_host.paths() == ["/moved", "/banner.png", "/to-metadata", "/to-lan"]


def test_redirect_loops_end(client, advertiser_host):
    advertiser_host.routes["/loop"] = Route(b"", status=302, headers={"Location": "/loop"})
    response = fetch(client, advertiser_host.url("/loop"))
    assert response.status_code == 502
    assert advertiser_host.paths() == ["/loop"] * (assets.MAX_REDIRECTS + 1)


def test_a_slow_server_times_out(client, advertiser_host, monkeypatch):
    monkeypatch.setattr(assets, "READ_SECONDS", 0.2)
    advertiser_host.routes["/slow.png"] = Route(PNG, delay=1.0)
    started = time.monotonic()
    response = fetch(client, advertiser_host.url("/slow.png"))
    assert response.status_code == 504
    assert time.monotonic() - started < 0.9


def test_a_failed_fetch_is_not_repeated_at_every_impression(client, advertiser_host):
    url = advertiser_host.url("/gone.png")  # the server answers 404
    answers = [fetch(client, url) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [502] * 3
    assert answers[0].json() == {"error": "the image's server answered 404"}
    assert advertiser_host.paths() == ["/gone.png"]


def test_the_disk_cache_is_bounded(client, advertiser_host, fresh_assets, monkeypatch):
    # Room for either image (and its type), not both: the least recently served one goes.
    monkeypatch.setattr(assets, "CACHE_MAX_BYTES", len(PNG) + 16)
    advertiser_host.routes["/a.png"] = Route(PNG)
    advertiser_host.routes["/b.gif"] = Route(TRANSPARENT_GIF, content_type="image/gif")
    for path in ("/a.png", "/b.gif", "/a.png"):
        assert fetch(client, advertiser_host.url(path)).status_code == 200
    assert advertiser_host.paths() == ["/a.png", "/b.gif", "/a.png"]
    assert len(list(fresh_assets.iterdir())) == 1


def test_concurrent_requests_share_one_fetch(advertiser_host):
    advertiser_host.routes["/banner.png"] = Route(PNG, delay=0.3)
    url = advertiser_host.url("/banner.png")

    async def five_at_once() -> list[assets.Asset]:
        return await asyncio.gather(*(assets.asset_get(url) for _ in range(5)))

    served = asyncio.run(five_at_once())
    assert {asset.body for asset in served} == {PNG}
    assert advertiser_host.paths() == ["/banner.png"]


def test_first_party_urls_name_each_image_for_good():
    url = "https://cdn.advertiser.example/banner.png?v=3"
    asset_url = first_party_asset_url(NABORIA, url)
    assert asset_url == first_party_asset_url(NABORIA, url)  # cacheable: always the same
    assert signing.Signer(salt=assets.ASSET_SALT).unsign_object(token_of(asset_url)) == url
    assert first_party_asset_url(NABORIA, url + "&v=4") != asset_url


@pytest.mark.parametrize(
    "url", ["", "/banner.png", "//cdn.example/banner.png", "data:image/png;base64,AA", "ftp://x/y"]
)
def test_only_http_images_get_a_first_party_url(url):
    assert first_party_asset_url(NABORIA, url) == ""


def test_the_images_of_html_creatives_are_rewritten_to_first_party_urls():
    html = (
        '<div style="color:#fff"><img src="https://cdn.advertiser.example/a.png" alt="A">'
        '<img src="https://cdn.advertiser.example/b.png"></div>'
    )
    rewritten = rewrite_html_assets(html, NABORIA)
    first = first_party_asset_url(NABORIA, "https://cdn.advertiser.example/a.png")
    second = first_party_asset_url(NABORIA, "https://cdn.advertiser.example/b.png")
    assert rewritten == (
        f'<div style="color:#fff"><img src="{first}" alt="A"><img src="{second}"></div>'
    )
    assert "cdn.advertiser.example" not in rewritten


def test_rewriting_sanitises_what_was_published_unsanitised():
    # A delivery document written before every write path sanitised.
    html = (
        '<script>fetch("https://t.example")</script>'
        '<div style="background:url(https://t.example/p.gif);color:red">'
        '<img src="//t.example/x.gif" onerror="x()"></div>'
    )
    assert rewrite_html_assets(html, NABORIA) == '<div style="color:red"><img></div>'


def test_urls_made_after_the_secret_key_changed_are_signed_with_it(settings, client, upstream):
    url = upstream.url("/banner.png", host="127.0.0.1")  # refused, once its token is accepted
    before = first_party_asset_url(NABORIA, url)
    settings.SECRET_KEY = "rotated-" * 8
    after = first_party_asset_url(NABORIA, url)
    assert after != before
    assert client.get(local(before)).status_code == 400
    assert client.get(local(after)).status_code == 403


def self_signed(name: str, directory: Path) -> tuple[Path, Path]:
    """A certificate for ``name`` and its key (cryptography comes with daphne's autobahn)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_file, key_file = directory / "certificate.pem", directory / "key.pem"
    certificate_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certificate_file, key_file


def test_https_is_pinned_to_the_checked_address_and_verified_for_the_name(
    client, advertiser_host, tmp_path, monkeypatch
):
    certificate, key = self_signed(ADVERTISER_HOST, tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(certificate, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate))  # this test's trusted authority
    # The stand-in resolver gives 127.0.0.1 for every name: the certificate decides.
    monkeypatch.setattr(assets, "resolve", lambda host, port: ["127.0.0.1"])
    with serving(tls) as secure:
        secure.routes["/banner.png"] = Route(PNG)
        url = f"https://{ADVERTISER_HOST}:{secure.port}/banner.png"
        served = fetch(client, url)
        assert (served.status_code, served.content) == (200, PNG)
        assert secure.requests == [("/banner.png", f"{ADVERTISER_HOST}:{secure.port}")]
        # A name the certificate does not cover, on the same address: refused.
        other = fetch(client, f"https://other.advertiser.test:{secure.port}/banner.png")
        assert other.status_code == 502
        assert other.json() == {"error": "the image's server failed: SSLError"}
