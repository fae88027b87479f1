"""Bad input gets a 4xx with a JSON ``error``, never a 500, and costs no accepted data: invalid
UTF-8 anywhere, any nesting depth, numbers out of range, URLs ingest could not split, bodies over
the limit (refused before they are read), heads over the limits.

Requests go through the whole ASGI application (naboria.asgi) in this process, on the direct
path into ClickHouse; the body and head limits also through the two servers as they are
started in production (the web role's daphne, the ingest role's uvicorn), on free ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.schemas import MAX_BODY_BYTES, MAX_DEPTH
from naboria.request_limits import MAX_HEAD_BYTES, MAX_HEADER_FIELDS
from scripts.test_services import ROOT, embedded_environment, free_port, prepare_demo
from tests.integration.test_collect_direct import VISITOR_IP, rows
from tests.tracking_client import UNKNOWN_CAMPAIGN, delivered_ad_event
from tests.unit.test_enrichment import WINDOWS_CHROME

pytestmark = [
    pytest.mark.clickhouse,
    pytest.mark.django_db,
    pytest.mark.usefixtures("clickhouse_schema", "direct_path"),
]
DEEP = b"[" * 10_000 + b"]" * 10_000
MiB = 1024 * 1024
PAGEVIEW = b'{"type":"pageview","url":"https://shop.example/ok"}'


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    body_reads: int  # how many body messages the application asked for

    def error(self) -> str:
        assert self.headers["content-type"].startswith("application/json"), self.body
        message = json.loads(self.body)["error"]
        assert isinstance(message, str)
        return message


@pytest.fixture
def application(db: None) -> Any:
    from naboria.asgi import application

    return application


@pytest.fixture
def shop(site: Any) -> Any:
    site.allowed_domains = ["shop.example"]
    site.save()
    return site


def call(
    application: Any,
    method: str,
    path: str,
    *,
    query: bytes = b"",
    headers: Sequence[tuple[bytes, bytes]] = (),
    chunks: Sequence[bytes] = (b"",),
) -> Answer:
    """One request as a server hands it to the application: the body in ``chunks``."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": [
            (b"host", b"testserver"),
            (b"user-agent", WINDOWS_CHROME.encode()),
            *headers,
        ],
        "client": (VISITOR_IP, 50000),
        "server": ("testserver", 80),
    }
    pending = list(chunks)
    reads = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal reads
        if not pending:
            await asyncio.Event().wait()  # the client stays connected
        reads += 1
        return {"type": "http.request", "body": pending.pop(0), "more_body": bool(pending)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async_to_sync(application)(scope, receive, send)
    start = sent[0]
    return Answer(
        status=start["status"],
        headers={name.decode(): value.decode() for name, value in start["headers"]},
        body=b"".join(message.get("body", b"") for message in sent[1:]),
        body_reads=reads,
    )


def post(application: Any, path: str, body: bytes, *, headers: Sequence[Any] = ()) -> Answer:
    declared = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    return call(application, "POST", path, headers=[*declared, *headers], chunks=[body])


def batch(site: Any, *events: bytes, **fields: bytes) -> bytes:
    extra = b"".join(b'"%s":%s,' % (name.encode(), value) for name, value in fields.items())
    return b'{"site":"%s",%s"events":[%s]}' % (site.public_id.encode(), extra, b",".join(events))


def shown(site: Any, impression: str, **facts: int) -> bytes:
    """An impression of an ad delivered with these facts."""
    body = delivered_ad_event(
        site=site.public_id,
        impression=impression,
        **{"campaign": UNKNOWN_CAMPAIGN, "ad": 2, **facts},
    )
    return json.dumps(body).encode()


def stored_paths(site: Any) -> list[str]:
    return [
        path
        for (path,) in rows(
            "SELECT pathname FROM page_events WHERE site_id = {s:String} ORDER BY pathname",
            s=site.public_id,
        )
    ]


# --- Invalid UTF-8 -----------------------------------------------------------------------------


def test_invalid_utf8_inside_events_rejects_those_events_and_keeps_the_others(application, shop):
    bad = [
        b'{"type":"pageview","url":"https://shop.example/\xff"}',
        b'{"type":"event","url":"https://shop.example/","props":{"plan":"\xe2\x82"}}',
        b'{"type":"event","url":"https://shop.example/","props":{"\xc0\xaf":"x"}}',
        b'{"type":"pageview","url":"https://shop.example/","later":"\xed\xa0\x80"}',
    ]
    answer = post(application, "/collect", batch(shop, PAGEVIEW, *bad))
    assert answer.status == 202, answer.body
    result = json.loads(answer.body)
    assert result["accepted"] == 1
    assert [item["index"] for item in result["rejected"]] == [1, 2, 3, 4]
    assert all(re.fullmatch(r"Invalid UTF-8 at byte \d+", r["error"]) for r in result["rejected"])
    assert stored_paths(shop) == ["/ok"]


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"bid": b'"b\xff"'}, "- at `$.bid`"),
        ({"app": b'"\xc3"'}, "- at `$.app`"),
        ({"later": b'{"x":"\xff"}'}, "- at `$.later`"),
        ({"\xff": b"1"}, "at byte 2"),
    ],
)
def test_invalid_utf8_in_the_envelope_refuses_the_batch(application, shop, fields, where):
    body = batch(shop, PAGEVIEW, **fields) if "\xff" not in fields else b'{"\xff":1}'
    answer = post(application, "/collect", body)
    assert answer.status == 400
    assert answer.error() == f"malformed batch: Invalid UTF-8 {where}"
    assert stored_paths(shop) == []


def test_invalid_utf8_in_an_ad_event_or_a_consent_decision_is_a_400(application, shop):
    answer = post(
        application, "/ad-event", shown(shop, "i1").replace(b'"impression"', b'"imp\xff"')
    )
    assert answer.status == 400
    assert re.fullmatch(r"malformed ad event: Invalid UTF-8 at byte \d+", answer.error())
    decision = b'{"site":"%s","version":1,"granted":["\xff"],"denied":[]}' % shop.public_id.encode()
    answer = post(application, "/consent", decision)
    assert answer.status == 400
    assert answer.error().startswith("malformed consent decision: Invalid UTF-8")


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/p.gif", b"site=SITE&url=https://shop.example/%FF"),
        ("/p.gif", b"site=SITE&url=https://shop.example/\xff"),
        ("/p.gif", b"site=SITE&ref=%C3"),
        ("/init", b"site=SITE&bid=%E2%82"),
        ("/init", b"site=\xffSITE"),
        ("/ads/listing", b"placement=%FF"),
    ],
)
def test_query_strings_must_decode_to_utf8(application, shop, path, query):
    query = query.replace(b"SITE", shop.public_id.encode())
    answer = call(application, "GET", path, query=query)
    assert answer.status == 400
    assert answer.error() == "query string is not valid UTF-8"


def test_utf8_in_query_strings_and_headers_is_read_as_such(application, shop):
    query = b"site=%s&url=https://shop.example/z%%C3%%BCrich" % shop.public_id.encode()
    assert call(application, "GET", "/p.gif", query=query).status == 200
    app_agent = [(b"user-agent", "Shop/2.1 (Zürich; iOS 17)".encode())]
    assert post(application, "/collect", batch(shop, PAGEVIEW), headers=app_agent).status == 202
    assert stored_paths(shop) == ["/ok", "/zürich"]


@pytest.mark.parametrize("header", [b"user-agent", b"referer", b"x-forwarded-for"])
def test_headers_must_be_utf8(application, shop, header):
    answer = post(application, "/collect", batch(shop, PAGEVIEW), headers=[(header, b"a\xff")])
    assert answer.status == 400
    assert answer.error() == f"header {header.decode()} is not valid UTF-8"


# --- Nesting -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/collect", b'{"site":"s","events":[' + PAGEVIEW + b"," + DEEP + b"]}"),
        (
            "/collect",
            b'{"site":"s","events":[{"type":"event","url":"https://s.example/",'
            b'"props":{"a":' + DEEP + b"}}]}",
        ),
        ("/collect", b'{"site":"s","later":' + DEEP + b',"events":[' + PAGEVIEW + b"]}"),
        ("/collect", b'{"site":' * 5000),  # never closed
        ("/ad-event", b'{"type":"click","later":' + DEEP + b"}"),
        ("/consent", b'{"site":"s","later":' + DEEP + b"}"),
    ],
)
def test_nesting_deeper_than_the_limit_anywhere_refuses_the_body(application, shop, path, body):
    answer = post(application, path, body.replace(b'"s"', b'"%s"' % shop.public_id.encode()))
    assert answer.status == 400
    assert answer.error().endswith(f"JSON nested deeper than {MAX_DEPTH} levels")


def test_nesting_within_the_limit_is_an_unknown_field(application, shop):
    within = b"[" * (MAX_DEPTH - 4) + b"]" * (MAX_DEPTH - 4)
    event = b'{"type":"pageview","url":"https://shop.example/ok","later":' + within + b"}"
    answer = post(application, "/collect", batch(shop, event))
    assert (answer.status, json.loads(answer.body)) == (202, {"accepted": 1, "rejected": []})


# --- Numbers -----------------------------------------------------------------------------------


def ad_rows(impression: str) -> list[tuple[Any, ...]]:
    return rows(
        "SELECT campaign_id, ad_id, placement_id FROM ad_events WHERE impression_id = {i:String}",
        i=impression,
    )


def test_an_ad_events_facts_come_from_its_token_whatever_the_body_says(application, shop):
    body = json.loads(shown(shop, "told", campaign=UNKNOWN_CAMPAIGN, ad=70, placement=3))
    body.update(campaign=2**64, ad=-1, placement="x", impression="other", site="elsewhere")
    answer = post(application, "/ad-event", json.dumps(body).encode())
    assert answer.status == 200, answer.body
    assert ad_rows("told") == [(UNKNOWN_CAMPAIGN, 70, 3)]
    assert ad_rows("other") == []


def test_the_largest_ad_ids_are_stored_exactly(application, shop):
    largest = 2**63 - 1  # a BigAutoField's last id
    answer = post(application, "/ad-event", shown(shop, "max", campaign=largest, ad=largest))
    assert answer.status == 200, answer.body
    assert ad_rows("max") == [(largest, largest, 0)]


def test_numbers_out_of_range_reject_their_event_only(application, shop):
    events = [
        PAGEVIEW,
        b'{"type":"pageview","url":"https://shop.example/a","ts":100000000000001}',
        b'{"type":"pageview","url":"https://shop.example/b","ts":1e400}',
        b'{"type":"pageview","url":"https://shop.example/c","ts":-1}',
        b'{"type":"engagement","url":"https://shop.example/d","visible_ms":9223372036854775808}',
        b'{"type":"engagement","url":"https://shop.example/e","scroll_depth":1e2}',
        b'{"type":"event","url":"https://shop.example/f","props":{"n":18446744073709551616}}',
        b'{"type":"event","url":"https://shop.example/g","props":{"n":-1e400}}',
    ]
    answer = post(application, "/collect", batch(shop, *events))
    assert answer.status == 202, answer.body
    result = json.loads(answer.body)
    assert result["accepted"] == 1
    assert [item["index"] for item in result["rejected"]] == list(range(1, 8))
    assert stored_paths(shop) == ["/ok"]


@pytest.mark.parametrize("sent_at", [b"1e400", b"100000000000001", b"-1", b"NaN"])
def test_envelope_numbers_out_of_range_refuse_the_batch(application, shop, sent_at):
    answer = post(application, "/collect", batch(shop, PAGEVIEW, sent_at=sent_at))
    assert answer.status == 400
    assert answer.error().startswith("malformed batch: ")


# --- URLs and headers the endpoints parse --------------------------------------------------------


def test_urls_ingest_could_not_split_reject_their_event(application, shop):
    events = [
        PAGEVIEW,
        b'{"type":"pageview","url":"http://[shop.example/"}',
        b'{"type":"pageview","url":"https://shop.example/","referrer":"http://x]/"}',
        b'{"type":"outbound","url":"https://shop.example/","target":"http://[1.2.3.4]/"}',
        '{"type":"pageview","url":"http://a\uff03b@shop.example/"}'.encode(),
    ]
    answer = post(application, "/collect", batch(shop, *events))
    assert answer.status == 202, answer.body
    rejected = json.loads(answer.body)["rejected"]
    assert [item["index"] for item in rejected] == [1, 2, 3, 4]
    assert all(item["error"].startswith("Invalid URL (") for item in rejected)
    assert stored_paths(shop) == ["/ok"]


def test_a_pixel_with_an_unsplittable_url_or_referer_is_a_400(application, shop):
    site = shop.public_id.encode()
    for query, headers in [
        (b"site=%s&url=http://[x/" % site, []),
        (b"site=%s&url=https://shop.example/&ref=http://[x" % site, []),
        (b"site=%s" % site, [(b"referer", b"http://[x/")]),
    ]:
        answer = call(application, "GET", "/p.gif", query=query, headers=headers)
        assert answer.status == 400
        assert answer.error() == "no valid event in the batch"


def test_an_origin_that_is_not_a_url_is_a_4xx(application, shop):
    headers = [(b"origin", b"http://[shop.example")]
    answer = post(application, "/collect", batch(shop, PAGEVIEW), headers=headers)
    assert answer.status == 400
    assert answer.error() == "malformed Origin header"


# --- Bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/collect", "/ad-event", "/consent"])
def test_a_declared_body_over_the_limit_is_refused_unread(application, path):
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % (200 * MiB))]
    answer = call(application, "POST", path, headers=headers, chunks=[b"x" * MiB] * 200)
    assert answer.status == 413
    assert answer.error() == f"body larger than {MAX_BODY_BYTES} bytes"
    assert answer.body_reads == 0
    assert answer.headers["connection"] == "close"


def test_a_streamed_body_is_refused_as_soon_as_it_is_over_the_limit(application):
    chunks = [b"x" * 16384] * 1000  # chunked: no Content-Length
    answer = call(application, "POST", "/collect", chunks=chunks)
    assert answer.status == 413
    assert answer.error() == f"body larger than {MAX_BODY_BYTES} bytes"
    assert answer.body_reads == MAX_BODY_BYTES // 16384 + 1
    assert answer.headers["connection"] == "close"


@pytest.mark.parametrize("path", ["/admin/login/", "/api/v1/sites/", "/ads/stream", "/nowhere"])
def test_django_and_channels_refuse_a_body_over_the_web_limit_unread(application, path):
    limit = django_settings.WEB_MAX_BODY_BYTES
    declared = [(b"content-length", b"%d" % (200 * MiB))]
    answer = call(application, "POST", path, headers=declared, chunks=[b"x" * MiB] * 200)
    assert answer.status == 413
    assert answer.error() == f"body larger than {limit} bytes"
    assert answer.body_reads == 0
    answer = call(application, "POST", path, chunks=[b"x" * MiB] * 200)  # chunked
    assert answer.status == 413
    assert answer.body_reads == limit // MiB + 1


def test_django_still_reads_bodies_within_the_web_limit(application):
    body = b"username=nobody&password=" + b"x" * MiB
    headers = [
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"content-length", b"%d" % len(body)),
    ]
    answer = call(application, "POST", "/admin/login/", headers=headers, chunks=[body])
    assert answer.status == 403  # Django's CSRF check: the body was read and the form looked at


def test_a_malformed_content_length_is_no_500(application, shop):
    headers = [(b"content-type", b"application/json"), (b"content-length", "²".encode())]
    answer = call(application, "POST", "/collect", headers=headers, chunks=[batch(shop, PAGEVIEW)])
    assert answer.status == 202


# --- Whatever a client sends ---------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # with NaN and infinities, which json.dumps writes as non-JSON words
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
events_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["pageview", "event", "engagement", "outbound", "click", "x"])},
    optional={
        "url": st.sampled_from(["https://shop.example/a", "http://[x/", "app://a/b", ""]),
        "referrer": st.sampled_from(["", "https://www.google.com/", "http://x]"]),
        "target": st.text(max_size=20),
        "props": st.dictionaries(st.text(max_size=8), json_values, max_size=5),
        "ts": st.integers(min_value=-(2**70), max_value=2**70) | st.floats(),
        "campaign": st.integers(min_value=-(2**70), max_value=2**70),
        "ad": st.integers(min_value=-(2**70), max_value=2**70) | st.floats(),
        "visible_ms": json_values,
        "later": json_values,
    },
)


@st.composite
def bodies(draw: Any, site: str) -> bytes:
    """JSON like what a tracker sends, then perhaps broken: bad UTF-8 spliced in, nested deep,
    cut short."""
    payload = draw(
        st.fixed_dictionaries(
            {"site": st.just(site) | st.text(max_size=5)},
            optional={
                "events": st.lists(events_like | json_values, max_size=4),
                "version": json_values,
                "granted": json_values,
                "denied": json_values,
                "impression": st.text(max_size=5),
                "type": st.sampled_from(["click", "impression", "x"]),
                "campaign": st.integers(min_value=-(2**70), max_value=2**70),
                "ad": st.integers(min_value=0, max_value=2**70),
                "sent_at": json_values,
            },
        )
    )
    body = json.dumps(payload).encode()
    if draw(st.booleans()):
        at = draw(st.integers(min_value=0, max_value=len(body)))
        splice = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"[" * 5000, b"{"]))
        body = body[:at] + splice + body[at:]
    if draw(st.booleans()):
        depth = draw(st.integers(min_value=1, max_value=3000))
        body = b"[" * depth + body + b"]" * depth
    return body[: draw(st.integers(min_value=1, max_value=len(body)))]


HYPOTHESIS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@HYPOTHESIS
@given(data=st.data())
def test_any_body_gets_an_answer_below_500(application, shop, data):
    body = data.draw(bodies(shop.public_id) | st.binary(max_size=300))
    for path in ("/collect", "/ad-event", "/consent"):
        answer = post(application, path, body)
        assert answer.status < 500, (path, body, answer.body)
        if answer.status >= 400:
            assert answer.error()


@HYPOTHESIS
@given(
    query=st.lists(
        st.sampled_from(
            [
                b"site=SITE",
                b"url=",
                b"ref=",
                b"bid=",
                b"&",
                b"=",
                b"%",
                b"%FF",
                b"%C3%BC",
                b"\xff",
                b"\xc3",
                b"http://[x",
                b"https://shop.example/",
                b"+",
            ]
        )
    ).map(b"".join),
    agent=st.binary(max_size=20),
)
def test_any_query_and_header_get_an_answer_below_500(application, shop, query, agent):
    query = query.replace(b"SITE", shop.public_id.encode())
    for path in ("/init", "/p.gif"):
        answer = call(application, "GET", path, query=query, headers=[(b"referer", agent)])
        assert answer.status < 500, (path, query, agent, answer.body)
        if answer.status >= 400:
            assert answer.error()


# --- The servers of the web and ingest roles -----------------------------------------------------


@dataclass
class Server:
    role: str
    process: subprocess.Popen[bytes]
    port: int
    site: str

    def peak_memory(self) -> int:
        """The process's peak resident memory so far, in bytes."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"VmHWM:\s+(\d+) kB", status)
        assert match
        return int(match.group(1)) * 1024


def _commands(port: int) -> dict[str, list[str]]:
    uvicorn = str(Path(sys.executable).with_name("uvicorn"))
    return {
        "web": [sys.executable, "-m", "naboria.web", "-b", "127.0.0.1", "-p", str(port),
                "naboria.asgi:application"],
        "ingest": [uvicorn, "naboria.asgi:application", "--host", "127.0.0.1", "--port",
                   str(port), "--http", "naboria.ingest_http:HttpToolsProtocol",
                   "--no-access-log", "--lifespan", "off"],
    }  # fmt: skip


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], str]:
    # Both servers share the prepared embedded installation; the start-up checks would open
    # the embedded ClickHouse, which only one process can hold (and these requests never reach).
    env = embedded_environment(tmp_path_factory.mktemp("var"), NABORIA_STARTUP_CHECKS="false")
    _, site = prepare_demo(env)
    return env, site


@pytest.fixture(scope="module", params=["web", "ingest"])
def server(
    request: pytest.FixtureRequest,
    installation: tuple[dict[str, str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    env, site = installation
    port = free_port()
    log = tmp_path_factory.mktemp("log") / f"{request.param}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            _commands(port)[request.param],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=output,
        )
    deadline = time.monotonic() + 60
    init = b"GET /init?site=%s HTTP/1.1\r\nHost: x\r\n\r\n" % site.encode()
    while True:
        with contextlib.suppress(ConnectionRefusedError):
            if exchange(port, init)[0] == 200:
                break
        if process.poll() is not None:
            raise AssertionError(log.read_text())
        assert time.monotonic() < deadline, f"{request.param} did not start"
        time.sleep(0.2)
    yield Server(request.param, process, port, site)
    process.terminate()
    process.wait(timeout=10)


def exchange(port: int, head: bytes, body_bytes: int = 0) -> tuple[int, dict[str, Any], float]:
    """Send ``head`` and ``body_bytes`` bytes of body while reading the answer: (status, JSON
    body or {}, seconds until it came); status 0 if the connection closed without one."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:

        def send() -> None:
            with contextlib.suppress(OSError):  # the server may close before it is all sent
                connection.sendall(head)
                for _ in range(body_bytes // MiB):
                    connection.sendall(b"x" * MiB)

        sender = threading.Thread(target=send)
        sender.start()
        try:
            status, content = _read_answer(connection)
        except OSError:
            status, content = 0, {}
        seconds = time.monotonic() - started
        sender.join(timeout=10)
    return status, content, seconds


def _read_answer(connection: socket.socket) -> tuple[int, dict[str, Any]]:
    data = b""
    while b"\r\n\r\n" not in data:
        received = connection.recv(65536)
        if not received:
            return 0, {}
        data += received
    head, _, content = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    length = re.search(rb"(?i)content-length: (\d+)", head)
    while length and len(content) < int(length.group(1)):
        content += connection.recv(65536)
    json_body = b"application/json" in head.lower() and content
    return status, json.loads(content) if json_body else {}


@pytest.mark.parametrize("path", ["/collect", "/ad-event", "/admin/login/", "/api/v1/sites/"])
def test_servers_refuse_a_declared_body_over_the_limit_before_it_is_sent(server, path):
    head = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" % path.encode()
    status, content, seconds = exchange(
        server.port, head + b"Content-Length: %d\r\n\r\n" % (200 * MiB), MiB
    )
    assert status == 413
    assert content["error"].startswith("body larger than ")
    assert seconds < 5


def test_servers_stop_reading_a_streamed_body_over_the_limit(server):
    """Chunked, so only counting can stop it: the answer comes while the client is still
    sending, after a few MiB at most (what the socket buffers hold), not 200."""
    limit = django_settings.WEB_MAX_BODY_BYTES if server.role == "web" else MAX_BODY_BYTES
    memory_before = server.peak_memory()
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(
            b"POST /collect HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        answer: list[tuple[int, dict[str, Any]]] = []
        reader = threading.Thread(target=lambda: answer.append(_read_answer(connection)))
        reader.start()
        chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"x" * 64 * 1024)
        try:
            while not answer and sent < 200 * MiB:
                connection.sendall(chunk)
                sent += 64 * 1024
        except OSError:
            pass  # the server closed the connection after answering
        reader.join(timeout=10)
    assert answer, "no answer"
    assert answer[0][0] == 413
    assert answer[0][1]["error"] == f"body larger than {limit} bytes"
    assert sent < limit + 32 * MiB
    assert server.peak_memory() - memory_before < 32 * MiB


@pytest.mark.parametrize(
    "head",
    [
        b"GET /init HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * MiB + b"\r\n\r\n",
        b"GET /init HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 10_000 + b"\r\n",
        b"GET /init HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * MAX_HEADER_FIELDS + b"\r\n",
        b"GET /init HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n",
        b"GET /init?" + b"a" * MiB + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["1 MiB header", "10,000 headers", "one header too many", "over 16 KiB", "1 MiB URL"],
)
def test_servers_refuse_heads_over_the_limits_with_431(server, head):
    status, content, seconds = exchange(server.port, head)
    assert status == 431
    assert content["error"].startswith("request line and headers larger than")
    assert seconds < 5


def test_servers_answer_requests_within_the_limits(server):
    head = b"GET /init?site=%s HTTP/1.1\r\nHost: x\r\n" % server.site.encode()
    fields = b"X-A: b\r\n" * (MAX_HEADER_FIELDS - 2)
    status, content, _ = exchange(server.port, head + fields + b"\r\n")
    assert status == 200
    assert content["bid"]


@pytest.mark.parametrize(
    "head",
    [
        b"GET /init?site=\xff HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /init HTTP/1.1\r\nHost: x\r\nUser-Agent: \xff\r\n\r\n",
        b"GARBAGE\r\n\r\n",
    ],
)
def test_servers_answer_requests_they_cannot_read_with_a_json_400(server, head):
    status, content, _ = exchange(server.port, head)
    assert status == 400
    assert content["error"]


def test_servers_queue_a_burst_of_connections_instead_of_dropping_them(server):
    """The listening socket's backlog (``ss`` shows it as Send-Q): every open page reconnecting
    its ad stream at once after a restart is queued until accepted. At Twisted's default of 50
    the web role's kernel dropped them, and browsers retried up to 31 s later."""
    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) is needed to read the listening socket's backlog")
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    listening = subprocess.run(
        ["ss", "-Hltn", f"sport = :{server.port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert int(listening[2]) >= min(2048, somaxconn)
