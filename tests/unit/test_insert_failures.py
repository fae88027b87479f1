"""ingest.storage.classify_failure on real errors: rows refused by the embedded engine (chdb),
and the HTTP client's errors from a server that answers with ClickHouse's error header or does
not answer at all."""

from __future__ import annotations

import http.server
import json
import socketserver
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import clickhouse_connect
import pytest

from ingest import storage
from ingest.storage import Failure, classify_failure, error_code
from naboria import clickhouse
from scripts.test_services import free_port

pytestmark = [pytest.mark.clickhouse, pytest.mark.usefixtures("clickhouse_schema")]


def page_row(**changes: Any) -> bytes:
    row = {
        "event_id": str(uuid.uuid4()),
        "site_id": f"failures-{uuid.uuid4().hex[:8]}",
        "timestamp": "2026-01-05 10:00:00.000",
        "received_at": "2026-01-05 10:00:00.000",
        "event_type": "pageview",
        "visitor_id": "v",
        "consent_state": "none",
        "pathname": "/",
        "url": "https://example.com/",
        "retention_days": 30,
        **changes,
    }
    return json.dumps(row).encode()


def refusal(row: bytes) -> Exception:
    """What the drain gets when it inserts this row into page_events."""
    with pytest.raises(Exception) as caught:  # noqa: PT011 (any error the driver raises)
        storage.insert_rows("page_events", [row])
    return caught.value


@pytest.mark.parametrize(
    ("row", "code"),
    [
        (b"not json at all", 27),  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        (page_row(timestamp="yyyy-mm-dd hh:mm:ss.fff"), 41),  # CANNOT_PARSE_DATETIME
        (page_row(event_id="not-a-uuid"), 376),  # CANNOT_PARSE_UUID
        (page_row(visible_ms="many"), 27),  # a word where a number belongs
        (b'{"pathname": "/unterminated', 26),  # CANNOT_PARSE_QUOTED_STRING
    ],
)
def test_rows_clickhouse_cannot_read_are_poison(row, code):
    error = refusal(row)
    assert error_code(error) == code
    assert classify_failure(error) is Failure.POISON


def test_chdb_errors_carry_their_code_in_the_text_as_well():
    """chdb's own exception (the cause of clickhouse-connect's) has no ``code``: it is read
    from its text, ``Code: 376. DB::Exception: ...``."""
    error = refusal(page_row(event_id="not-a-uuid"))
    assert error.__cause__ is not None
    assert not hasattr(error.__cause__, "code")
    assert error_code(error.__cause__) == 376
    assert classify_failure(error.__cause__) is Failure.POISON


def test_a_table_missing_during_a_migration_is_transient():
    with pytest.raises(Exception) as caught:  # noqa: PT011
        clickhouse.get_client().raw_insert("page_events_gone", None, page_row(), fmt="JSONEachRow")
    assert error_code(caught.value) == 60  # UNKNOWN_TABLE
    assert classify_failure(caught.value) is Failure.TRANSIENT


def test_codes_in_neither_list_and_driver_errors_are_unknown():
    with pytest.raises(Exception) as caught:  # noqa: PT011
        clickhouse.get_client().command("SELEC 1")
    assert error_code(caught.value) == 62  # SYNTAX_ERROR: the drain's own query, not the rows
    assert classify_failure(caught.value) is Failure.UNKNOWN
    with pytest.raises(Exception) as caught:  # noqa: PT011
        clickhouse.get_client().raw_insert("page_events", None, None, fmt="JSONEachRow")
    assert error_code(caught.value) is None  # clickhouse-connect's own refusal
    assert classify_failure(caught.value) is Failure.UNKNOWN


def test_the_lists_name_clickhouses_own_codes():
    """Each name and code as the engine (ClickHouse 26.x in chdb) knows them, and no code in
    both lists."""
    known = dict(
        clickhouse.get_client()
        .query(
            "SELECT DISTINCT name, code FROM system.errors "
            "SETTINGS system_events_show_zero_values = 1"
        )
        .result_rows
    )
    for name, code in {**storage.TRANSIENT_ERRORS, **storage.POISON_ERRORS}.items():
        assert known.get(name) == code, name
    assert not set(storage.TRANSIENT_ERRORS.values()) & set(storage.POISON_ERRORS.values())


class _FailingServer(http.server.BaseHTTPRequestHandler):
    """Answers clickhouse-connect's start-up queries as a server would, then refuses every
    other request as ClickHouse does: HTTP 500 with the code in X-ClickHouse-Exception-Code.
    The body leaves the code out, so the classification must read it from the header."""

    code = 0

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request = self.path.encode() + (self.rfile.read(length) if length else b"")
        if b"version()" in request:
            self._answer(200, b"26.1.1.1\tUTC\n")
        elif b"system.settings" in request or b"SELECT 1" in request:
            self._answer(200, b"")
        else:
            body = b"DB::Exception: refused for the test. (version 26.1.1.1)\n"
            self._answer(500, body, {"X-ClickHouse-Exception-Code": str(self.code)})

    do_GET = do_POST

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def failing_server() -> Iterator[Any]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _FailingServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("code", "failure"),
    [
        (252, Failure.TRANSIENT),  # TOO_MANY_PARTS
        (241, Failure.TRANSIENT),  # MEMORY_LIMIT_EXCEEDED
        (242, Failure.TRANSIENT),  # TABLE_IS_READ_ONLY
        (999, Failure.TRANSIENT),  # KEEPER_EXCEPTION
        (117, Failure.POISON),  # INCORRECT_DATA
        (53, Failure.POISON),  # TYPE_MISMATCH
        (1002, Failure.UNKNOWN),  # UNKNOWN_EXCEPTION
    ],
)
def test_over_http_the_code_comes_from_the_exception_header(failing_server, code, failure):
    _FailingServer.code = code
    client = clickhouse_connect.get_client(
        host="127.0.0.1", port=failing_server.server_address[1], autogenerate_session_id=False
    )
    with pytest.raises(Exception) as caught:  # noqa: PT011
        client.raw_insert("page_events", None, page_row(), fmt="JSONEachRow")
    assert error_code(caught.value) == code
    assert classify_failure(caught.value) is failure


def test_a_server_that_does_not_answer_is_transient():
    with pytest.raises(Exception) as caught:  # noqa: PT011
        clickhouse_connect.get_client(host="127.0.0.1", port=free_port(), connect_timeout=1)
    assert error_code(caught.value) is None  # refused before any server spoke
    assert classify_failure(caught.value) is Failure.TRANSIENT
