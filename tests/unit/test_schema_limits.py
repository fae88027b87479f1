"""The protocol's decoders fail only with msgspec.DecodeError, whatever the bytes: nesting
depth (checked against a plain scanner), invalid UTF-8 and where it is, URLs ingest could not
split, and the range of every number."""

from __future__ import annotations

import contextlib
import json
import re
import typing
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.schemas import (
    AD_EVENT_CLASSES,
    MAX_DEPTH,
    AdEventType,
    CustomEvent,
    _nested_within,
    ad_event_request_decoder,
    consent_decision_decoder,
    envelope_decoder,
    page_event_decoder,
)

DECODERS: list[Any] = [
    envelope_decoder,
    page_event_decoder,
    ad_event_request_decoder,
    consent_decision_decoder,
]
PAGEVIEW = b'{"type":"pageview","url":"https://shop.example/"}'
CLICK = {"type": "click", "impression_token": "t"}


def deepest_opening(data: bytes) -> int:
    """How many arrays or objects are open at most while reading ``data`` from the start, with
    JSON's strings and escapes: what a recursive decoder reaches before an error (at the latest
    a backslash outside a string)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == ord("\\"):
                escaped = True
            elif byte == ord('"'):
                in_string = False
        elif byte == ord('"'):
            in_string = True
        elif byte == ord("\\"):
            break  # not JSON: the decoder stops here
        elif byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    return deepest


json_documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='ab[]{}"\\/:,\u00e9'),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(alphabet='k[]{}"\\', max_size=4), children, max_size=4)
    ),
    max_leaves=60,
)


@settings(max_examples=500, deadline=None)
@given(document=json_documents)
def test_nesting_of_json_is_measured_exactly(document):
    data = json.dumps(document).encode()
    for limit in (1, 2, 3, 5, MAX_DEPTH):
        assert _nested_within(data, limit) == (deepest_opening(data) <= limit), data


@settings(max_examples=1000, deadline=None)
@given(
    data=st.lists(st.sampled_from([b"[", b"]", b"{", b"}", b'"', b"\\", b"a", b","])).map(b"".join)
)
def test_nesting_of_anything_else_is_never_underestimated(data):
    for limit in (1, 3, 8):
        if _nested_within(data, limit):
            assert deepest_opening(data) <= limit, data


def test_deep_nesting_anywhere_is_a_decode_error_not_a_recursion_error():
    deep = b"[" * 10_000 + b"]" * 10_000
    at_limit = b"[" * (MAX_DEPTH - 2) + b"]" * (MAX_DEPTH - 2)
    bodies: dict[Any, list[bytes]] = {
        envelope_decoder: [
            b'{"site":"s","events":[' + deep + b"]}",
            b'{"site":"s","x":' + deep + b',"events":[{}]}',
            b'{"site":"s","events":[{"type":"event","props":{"a":' + deep + b"}}]}",
            b"[" * 10_000,  # never closed
            b'{"a":' * 10_000,
        ],
        ad_event_request_decoder: [b'{"type":"click","x":' + deep + b"}"],
        consent_decision_decoder: [b'{"x":' + deep + b"}"],
    }
    for decoder, cases in bodies.items():
        for body in cases:
            with pytest.raises(msgspec.DecodeError, match=f"nested deeper than {MAX_DEPTH}"):
                decoder.decode(body)
    # Up to the limit it is only an unknown field.
    envelope = envelope_decoder.decode(b'{"site":"s","x":' + at_limit + b',"events":[{}]}')
    assert envelope.site == "s"


def test_brackets_and_escapes_inside_strings_do_not_count_as_nesting():
    url = "https://shop.example/?q=" + "[{" * 40 + '\\"' + "}]" * 40
    event = {"type": "pageview", "url": url[:2048]}
    batch = json.dumps({"site": "s", "events": [event] * 30}).encode()
    (raw, *_) = envelope_decoder.decode(batch).events
    assert page_event_decoder.decode(raw).url == event["url"]


def test_invalid_utf8_in_the_envelope_refuses_the_batch_and_names_the_field():
    for body, where in [
        (b'{"site":"s\xff","events":[' + PAGEVIEW + b"]}", "- at `$.site`"),
        (b'{"site":"s","app":"\xc3","events":[' + PAGEVIEW + b"]}", "- at `$.app`"),
        (b'{"site":"s","unknown":{"x":"\xff"},"events":[' + PAGEVIEW + b"]}", "- at `$.unknown`"),
        (b'{"site":"s","\xff":1,"events":[' + PAGEVIEW + b"]}", "at byte 13"),
        (b'{"site":"s","x":"\xff","x":1,"events":[' + PAGEVIEW + b"]}", "at byte 17"),
        (b'"\xff"', "at byte 1"),
    ]:
        with pytest.raises(msgspec.DecodeError, match=re.escape(f"Invalid UTF-8 {where}")):
            envelope_decoder.decode(body)


def test_invalid_utf8_inside_an_event_refuses_only_that_event():
    bad_events = [
        b'{"type":"pageview","url":"https://shop.example/\xff"}',
        b'{"type":"event","url":"https://shop.example/","props":{"plan":"\xe2\x82"}}',
        b'{"type":"event","url":"https://shop.example/","props":{"\xff":"x"}}',
        b'{"type":"pageview","url":"https://shop.example/","unknown":"\xed\xa0\x80"}',
    ]
    body = b'{"site":"s","events":[' + b",".join([PAGEVIEW, *bad_events]) + b"]}"
    good, *bad = envelope_decoder.decode(body).events
    assert page_event_decoder.decode(good).url == "https://shop.example/"
    for raw in bad:
        with pytest.raises(msgspec.DecodeError, match="Invalid UTF-8 at byte"):
            page_event_decoder.decode(raw)


def test_valid_utf8_is_decoded():
    event = page_event_decoder.decode(
        '{"type":"event","url":"https://bücher.example/ü","props":{"städte":"Zürich"}}'.encode()
    )
    assert isinstance(event, CustomEvent)
    assert event.props == {"städte": "Zürich"}


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("url", "http://[shop.example/"),
        ("url", "https://shop.example]/"),
        ("url", "http://[1.2.3.4]/"),
        ("referrer", "http://[x"),
        ("url", "http://a\uff03b@c/"),  # a host that NFKC turns into a/b@c
    ],
)
def test_urls_ingest_could_not_split_are_validation_errors(field, url):
    event = {"type": "pageview", "url": "https://shop.example/", field: url}
    with pytest.raises(msgspec.ValidationError, match=rf"Invalid URL .* - at `\$.{field}`"):
        page_event_decoder.decode(json.dumps(event).encode())
    outbound = {"type": "outbound", "url": "https://shop.example/", "target": url}
    with pytest.raises(msgspec.ValidationError, match=r"at `\$.target`"):
        page_event_decoder.decode(json.dumps(outbound).encode())
    with pytest.raises(msgspec.ValidationError, match=r"at `\$.url`"):
        ad_event_request_decoder.decode(json.dumps({**CLICK, "url": url}).encode())


def test_ipv6_and_international_hosts_are_urls():
    for url in ("http://[::1]:8000/a", "https://bücher.example/", "app://com.example/[cart]"):
        event = json.dumps({"type": "pageview", "url": url, "referrer": url}).encode()
        assert page_event_decoder.decode(event).url == url


def test_an_ad_event_request_names_its_ad_by_the_impression_token_alone():
    with pytest.raises(msgspec.ValidationError, match="impression_token"):
        ad_event_request_decoder.decode(b'{"type":"click","site":"s","campaign":1,"ad":2}')
    with pytest.raises(msgspec.ValidationError, match=r"\$.type"):
        ad_event_request_decoder.decode(json.dumps({**CLICK, "type": "purchase"}).encode())
    request = ad_event_request_decoder.decode(json.dumps({**CLICK, "campaign": 2**70}).encode())
    assert (request.type, request.impression_token) == ("click", "t")


def test_every_ad_event_type_can_be_requested():
    assert set(typing.get_args(AdEventType)) == set(AD_EVENT_CLASSES)


def test_numbers_out_of_range_are_validation_errors():
    for event in [
        {"type": "pageview", "url": "https://s.example/", "ts": 10**14 + 1},
        {"type": "pageview", "url": "https://s.example/", "ts": -1},
        {"type": "engagement", "url": "https://s.example/", "visible_ms": 2**63},
        {"type": "engagement", "url": "https://s.example/", "scroll_depth": 101},
        {"type": "event", "url": "https://s.example/", "props": {"n": 2**63}},
        {"type": "event", "url": "https://s.example/", "props": {"n": -(2**63) - 1}},
    ]:
        with pytest.raises(msgspec.ValidationError):
            page_event_decoder.decode(json.dumps(event).encode())
    with pytest.raises(msgspec.ValidationError, match=r"out of range - at `\$.props"):
        page_event_decoder.decode(
            b'{"type":"event","url":"https://s.example/","props":{"f":1e400}}'
        )
    with pytest.raises(msgspec.ValidationError, match=r"at `\$.sent_at`"):
        envelope_decoder.decode(b'{"site":"s","sent_at":1e400,"events":[{}]}')
    with pytest.raises(msgspec.ValidationError, match=r"at `\$.version`"):
        consent_decision_decoder.decode(b'{"site":"s","version":2e9,"granted":[],"denied":[]}')
    props = {"type": "event", "url": "https://s.example/", "props": {"a": 2**63 - 1, "b": -(2**63)}}
    event = page_event_decoder.decode(json.dumps(props).encode())
    assert isinstance(event, CustomEvent)
    assert event.props == props["props"]


fragments = st.sampled_from(
    [
        b"{",
        b"}",
        b"[",
        b"]",
        b'"',
        b"\\",
        b":",
        b",",
        b"\xff",
        b"\xc3",
        b"\xed\xa0\x80",
        b"1e400",
        b"18446744073709551616",
        b"NaN",
        b'"type"',
        b'"pageview"',
        b'"url"',
        b'"http://[x"',
        b'"site"',
        b'"events"',
        b"[" * 200,
        b"]" * 200,
        b" ",
        b"null",
        b'"\\ud800"',
    ]
)


@settings(max_examples=1500, deadline=None)
@given(body=st.lists(fragments, max_size=40).map(b"".join) | st.binary(max_size=200))
def test_any_bytes_are_decoded_or_refused_with_a_decode_error(body):
    for decoder in DECODERS:
        try:
            payload = decoder.decode(body)
        except msgspec.DecodeError:
            continue
        if decoder is envelope_decoder:
            for raw in payload.events:
                with contextlib.suppress(msgspec.DecodeError):
                    page_event_decoder.decode(raw)
