"""A stand-in for a ClickHouse server's HTTP interface, for TESTS AND LOCAL RUNS ONLY.

No ClickHouse server can be installed on the development machine (no Docker, and Debian's
package is far too old), yet the production topology runs web, ingest, drain and the Celery
worker as separate processes sharing one ClickHouse over HTTP. An embedded chdb data folder
can be opened by one process only, so this process owns it and serves the part of ClickHouse's
HTTP interface that clickhouse-connect and dbt-clickhouse use. The product then runs its real
``http://`` code path against it (``CLICKHOUSE_URL=http://127.0.0.1:PORT``), exactly as it does
against a real server. It is never used in production.

    python scripts/clickhouse_http_standin.py --data DIR --port PORT [--host 127.0.0.1]

or, from tests and launchers, ``start_clickhouse_standin(data_dir, log)``.

What it serves:
- ``GET /ping`` and ``GET /`` without a query: ``Ok.``
- ``GET``/``POST /``: the query in the ``query`` URL parameter, the body, or both (joined by a
  newline, so ``INSERT ... FORMAT X`` in the URL takes its data from the body); multipart form
  fields (clickhouse-connect sends long bound parameters that way); ``database``,
  ``default_format``, ``param_<name>`` bound parameters, settings as URL parameters (those the
  engine does not know are ignored), ``query_id``, sessions (``session_id``, ``session_timeout``,
  ``session_check``: each session has its own chdb connection, so SET, USE and temporary tables
  persist in it); chunked request bodies; request bodies compressed with Content-Encoding lz4,
  zstd, gzip or deflate.
- Responses: the ClickHouse headers clients read (X-ClickHouse-Query-Id, -Format, -Timezone,
  -Summary, -Server-Display-Name), always uncompressed (clickhouse-connect decompresses only
  what says it is compressed). Errors: the engine's ``Code: N. DB::Exception: ...`` text with
  ``X-ClickHouse-Exception-Code: N`` and the HTTP status a server gives that code.

In a session, the URL's database and settings apply to that one query, as on a server, except
for a SET or USE statement (what it changes stays). SIGTERM stops serving and closes the engine
once running queries end (up to 10 s).

Not served: authentication (any user is accepted), ClickHouse's own block compression
(``decompress=1`` / ``compress=1``), brotli request bodies, external data tables, read-only
GET requests, progress headers, results streamed while a query runs (each response is sent
whole), query cancellation and ``KILL QUERY`` by the client's query_id (it is only echoed),
the session time zone in X-ClickHouse-Timezone (always the server's), and the other HTTP
handlers (``/play``, ``/replicas_status``...).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import chdb
import lz4.frame  # type: ignore[import-untyped]
from backports import zstd

DISPLAY_NAME = "clickhouse-http-standin"
# URL parameters that the HTTP interface consumes itself: never applied as settings.
TRANSPORT_PARAMETERS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "client_protocol_version",
        "quota_key",
        "user",
        "password",
        "role",
        "stacktrace",
    }
)
DEFAULT_SESSION_TIMEOUT = 60.0
MAX_SESSION_TIMEOUT = 3600.0
# Statements that produce a result; a server names the result's format (X-ClickHouse-Format)
# for these only, and clickhouse-connect's command() relies on that to tell "" from a summary.
RESULT_STATEMENTS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN"})
# Statements that change the session itself: what the URL set for them is not undone.
SESSION_STATEMENTS = frozenset({"SET", "USE"})
_LEADING_NOISE = re.compile(rb"\A(?:\s+|--[^\n]*(?:\n|\Z)|#[^\n]*(?:\n|\Z)|/\*.*?\*/|\()*", re.S)
_FIRST_WORD = re.compile(rb"[A-Za-z]+")
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*\Z", re.IGNORECASE)
_ERROR_CODE = re.compile(r"Code: (\d+)\.")
_ERROR_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)")

# The HTTP status a ClickHouse server answers an error with (its exceptionCodeToHTTPStatus);
# clickhouse-connect retries 503 and takes the error code from the header either way.
_STATUS_BY_ERROR = {
    **dict.fromkeys(("REQUIRED_PASSWORD",), 401),
    **dict.fromkeys(
        (
            "UNKNOWN_USER",
            "WRONG_PASSWORD",
            "AUTHENTICATION_FAILED",
            "SET_NON_GRANTED_ROLE",
            "ACCESS_DENIED",
        ),
        403,
    ),
    **dict.fromkeys(
        (
            "BAD_ARGUMENTS",
            "CANNOT_COMPILE_REGEXP",
            "CANNOT_PARSE_TEXT",
            "CANNOT_PARSE_ESCAPE_SEQUENCE",
            "CANNOT_PARSE_QUOTED_STRING",
            "CANNOT_PARSE_DATE",
            "CANNOT_PARSE_DATETIME",
            "CANNOT_PARSE_NUMBER",
            "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
            "CANNOT_PARSE_IPV4",
            "CANNOT_PARSE_IPV6",
            "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
            "CANNOT_PARSE_UUID",
            "DUPLICATE_COLUMN",
            "ILLEGAL_COLUMN",
            "UNKNOWN_ELEMENT_IN_AST",
            "UNKNOWN_TYPE_OF_AST_NODE",
            "THERE_IS_NO_COLUMN",
            "TOO_DEEP_AST",
            "TOO_BIG_AST",
            "UNEXPECTED_AST_STRUCTURE",
            "SYNTAX_ERROR",
            "INCORRECT_DATA",
            "TYPE_MISMATCH",
            "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
        ),
        400,
    ),
    **dict.fromkeys(
        (
            "UNKNOWN_TABLE",
            "UNKNOWN_FUNCTION",
            "UNKNOWN_IDENTIFIER",
            "UNKNOWN_TYPE",
            "UNKNOWN_STORAGE",
            "UNKNOWN_DATABASE",
            "UNKNOWN_SETTING",
            "UNKNOWN_DIRECTION_OF_SORTING",
            "UNKNOWN_AGGREGATE_FUNCTION",
            "UNKNOWN_FORMAT",
            "UNKNOWN_DATABASE_ENGINE",
            "UNKNOWN_TYPE_OF_QUERY",
            "UNKNOWN_ROLE",
        ),
        404,
    ),
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "SOCKET_TIMEOUT": 503,
    "CANNOT_OPEN_FILE": 503,
    "CANNOT_SCHEDULE_TASK": 503,
    "HTTP_LENGTH_REQUIRED": 411,
    "TIMEOUT_EXCEEDED": 408,
    "UNSUPPORTED_MEDIA_TYPE": 415,
}


class QueryFailed(Exception):
    """A query the engine or the interface refused: ClickHouse's error text and code."""

    def __init__(self, message: str, code: int | None = None) -> None:
        found = _ERROR_CODE.search(message)
        self.code = code if code is not None else int(found.group(1)) if found else 1001
        if not message.startswith("Code: "):
            message = f"Code: {self.code}. DB::Exception: {message}"
        super().__init__(message)
        names = _ERROR_NAME.findall(message)
        self.status = _STATUS_BY_ERROR.get(names[-1], 500) if names else 500


def _quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _quote_value(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def statement_kind(query: bytes) -> str:
    """The first keyword of ``query`` (upper case), past comments and parentheses."""
    head = query[:4096]
    match = _FIRST_WORD.match(head, _LEADING_NOISE.match(head).end())  # type: ignore[union-attr]
    return match.group(0).decode().upper() if match else ""


def decode_body(body: bytes, encoding: str) -> bytes:
    """The request body without its Content-Encoding; clickhouse-connect compresses each
    insert block on its own, so a body may hold several lz4 or zstd frames in a row."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    try:
        if encoding == "lz4":
            parts = []
            while body:
                decompressor = lz4.frame.LZ4FrameDecompressor()
                parts.append(decompressor.decompress(body))
                body = decompressor.unused_data
            return b"".join(parts)
        if encoding == "zstd":
            return bytes(zstd.decompress(body))
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
    except (RuntimeError, OSError, EOFError, zlib.error, zstd.ZstdError) as error:
        raise QueryFailed(f"Cannot decompress the request body: {error}", 271) from error
    raise QueryFailed(
        f"Unknown HTTP compression method {encoding!r} (UNKNOWN_COMPRESSION_METHOD)", 89
    )


def form_fields(content_type: str, body: bytes) -> dict[str, str]:
    """The fields of a multipart/form-data body; an external data table (a file part) is
    refused, as the stand-in does not serve them."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if part.get_filename() is not None:
            raise QueryFailed("External data is not served by the stand-in (NOT_IMPLEMENTED)", 48)
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload.decode()
    return fields


@dataclass
class Session:
    connection: Any
    timeout: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_used: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Request:
    query: bytes
    database: str | None
    default_format: str
    settings: Mapping[str, str]
    parameters: Mapping[str, str]
    session_id: str | None
    session_timeout: float
    session_check: bool


@dataclass(frozen=True)
class Result:
    body: bytes
    result_format: str | None
    summary: dict[str, str]


class Engine:
    """The chdb engine on one data folder. Each request without a session gets a connection
    of its own (a ClickHouse query context: the URL's database and settings apply to that query
    only); handles on one path share the engine and its data, and run queries in parallel."""

    def __init__(self, data_dir: Path) -> None:
        self.path = str(data_dir.resolve())
        # Held for the process's lifetime: the engine would shut down with its last handle.
        self._root = chdb.connect(self.path)
        row = self._root.query("SELECT version(), timezone()", "TabSeparated").bytes()
        self.version, self.timezone = row.decode().strip().split("\t")
        names = self._root.query("SELECT name FROM system.settings", "TabSeparated").bytes()
        self.known_settings = frozenset(names.decode().split())
        self._ignored_settings: set[str] = set()
        self._sessions: dict[str, Session] = {}
        self._sessions_lock = threading.Lock()
        # Closing the engine under a running query crashes the process: close() waits for them.
        self._running = 0
        self._closed = False
        self._idle = threading.Condition()

    def close(self, timeout: float) -> bool:
        """Refuse new queries and close the engine once the running ones end; False (the engine
        left open) if they outlast ``timeout`` seconds."""
        with self._idle:
            self._closed = True
            if not self._idle.wait_for(lambda: self._running == 0, timeout):
                return False
        with self._sessions_lock:
            for session in self._sessions.values():
                session.connection.close()
            self._sessions.clear()
        self._root.close()
        return True

    @contextmanager
    def _counted(self) -> Iterator[None]:
        with self._idle:
            if self._closed:
                raise QueryFailed("The server is shutting down (ABORTED)", 236)
            self._running += 1
        try:
            yield
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    @contextmanager
    def _session(self, session_id: str, request: Request) -> Iterator[Session]:
        now = time.monotonic()
        with self._sessions_lock:
            for key, idle in list(self._sessions.items()):
                if now - idle.last_used > idle.timeout and not idle.lock.locked():
                    idle.connection.close()
                    del self._sessions[key]
            session = self._sessions.get(session_id)
            if session is None:
                if request.session_check:
                    raise QueryFailed(f"Session {session_id} not found (SESSION_NOT_FOUND)", 372)
                session = Session(chdb.connect(self.path), request.session_timeout)
                self._sessions[session_id] = session
            if not session.lock.acquire(blocking=False):
                raise QueryFailed(
                    f"Session {session_id} is locked by a concurrent client (SESSION_IS_LOCKED)",
                    373,
                )
        try:
            yield session
        finally:
            session.timeout = request.session_timeout
            session.last_used = time.monotonic()
            session.lock.release()

    def _settings_statement(self, settings: Mapping[str, str]) -> str | None:
        applied = {}
        for name, value in settings.items():
            if name in self.known_settings:
                applied[name] = value
            elif name not in self._ignored_settings:
                self._ignored_settings.add(name)
                print(f"clickhouse-standin: ignoring unknown setting {name}", file=sys.stderr)
        if not applied:
            return None
        return "SET " + ", ".join(f"{name} = {_quote_value(v)}" for name, v in applied.items())

    def _snapshot(self, connection: Any, settings: Mapping[str, str]) -> list[str]:
        """The statements that put a session back as it was before a query's URL database and
        settings (a server applies those to that one query, never to the session)."""
        database = connection.query("SELECT currentDatabase()", "TabSeparated").bytes()
        restore = [f"USE {_quote_identifier(database.decode().strip())}"]
        names = [name for name in settings if name in self.known_settings]
        if names:
            listed = ", ".join(_quote_value(name) for name in names)
            rows = connection.query(
                f"SELECT name, value, changed FROM system.settings WHERE name IN ({listed})",  # noqa: S608 (quoted)
                "JSONCompact",
            )
            for name, value, changed in json.loads(rows.bytes())["data"]:
                restore.append(f"SET {name} = {_quote_value(value) if changed else 'DEFAULT'}")
        return restore

    def _run(self, connection: Any, request: Request) -> Any:
        if request.database:
            connection.query(f"USE {_quote_identifier(request.database)}", "TabSeparated")
        statement = self._settings_statement(request.settings)
        if statement:
            connection.query(statement, "TabSeparated")
        return connection.query(
            request.query, request.default_format, params=dict(request.parameters)
        )

    def _execute(self, kind: str, request: Request) -> Any:
        if request.session_id is None:
            connection = chdb.connect(self.path)
            try:
                return self._run(connection, request)
            finally:
                connection.close()
        with self._session(request.session_id, request) as session:
            keep = kind in SESSION_STATEMENTS
            restore = [] if keep else self._snapshot(session.connection, request.settings)
            try:
                return self._run(session.connection, request)
            finally:
                for sql in restore:
                    session.connection.query(sql, "TabSeparated")

    def execute(self, request: Request) -> Result:
        kind = statement_kind(request.query)
        try:
            with self._counted():
                outcome = self._execute(kind, request)
        except QueryFailed:
            raise
        except Exception as error:  # chdb raises its own error types with ClickHouse's text
            raise QueryFailed(str(error).strip()) from error
        body = outcome.bytes()
        result_format = None
        if kind in RESULT_STATEMENTS:
            tail = request.query[-200:].decode(errors="replace")
            found = _TRAILING_FORMAT.search(tail)
            result_format = found.group(1) if found else request.default_format
        summary = {
            "read_rows": str(outcome.rows_read()),
            "read_bytes": str(outcome.bytes_read()),
            "written_rows": str(outcome.rows_written()),
            "written_bytes": str(outcome.bytes_written()),
            "total_rows_to_read": "0",
            "result_bytes": str(len(body)),
            "elapsed_ns": str(int(outcome.elapsed() * 1e9)),
        }
        return Result(body=body, result_format=result_format, summary=summary)


def parse_request(method: str, url_query: str, headers: Any, body: bytes) -> Request:
    parameters = dict(parse_qsl(url_query, keep_blank_values=True))
    content_type = headers.get("Content-Type", "")
    if parameters.get("decompress") == "1" or parameters.get("compress") == "1":
        raise QueryFailed("ClickHouse block compression is not served by the stand-in", 48)
    body = decode_body(body, headers.get("Content-Encoding", ""))
    if content_type.startswith("multipart/form-data"):
        parameters.update(form_fields(content_type, body))
        body = b""
    url_text = parameters.get("query", "").encode()
    query = url_text + b"\n" + body if url_text and body else url_text or body
    if not query.strip():
        raise QueryFailed("Empty query (SYNTAX_ERROR)", 62)
    settings = {
        name: value
        for name, value in parameters.items()
        if name not in TRANSPORT_PARAMETERS and not name.startswith("param_")
    }
    try:
        timeout = float(parameters.get("session_timeout", DEFAULT_SESSION_TIMEOUT))
    except ValueError:
        timeout = -1.0
    if not 0 <= timeout <= MAX_SESSION_TIMEOUT:
        raise QueryFailed("Invalid session timeout (INVALID_SESSION_TIMEOUT)", 374)
    return Request(
        query=query,
        database=parameters.get("database") or None,
        default_format=parameters.get("default_format") or "TabSeparated",
        settings=settings,
        parameters={
            name.removeprefix("param_"): value
            for name, value in parameters.items()
            if name.startswith("param_")
        },
        session_id=parameters.get("session_id") or None,
        session_timeout=timeout,
        session_check=parameters.get("session_check") == "1",
    )


def _content_type(result_format: str | None) -> str:
    if result_format is None:
        return "text/plain; charset=UTF-8"
    if result_format.startswith("JSON"):
        return "application/json; charset=UTF-8"
    if result_format.startswith(("TabSeparated", "TSV", "CSV", "Pretty", "Values")):
        return "text/plain; charset=UTF-8"
    return "application/octet-stream"


class Handler(BaseHTTPRequestHandler):
    # Keep-alive, as clickhouse-connect's connection pool expects of a server.
    protocol_version = "HTTP/1.1"
    server_version = DISPLAY_NAME
    engine: Engine

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def log_message(self, format: str, *args: Any) -> None:
        # Only failures are logged (in _handle); a line per query would drown the log.
        return

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailer fields: none that matter here
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        body = self._read_body()
        query_id = dict(parse_qsl(url.query)).get("query_id") or str(uuid.uuid4())
        headers = {
            "X-ClickHouse-Server-Display-Name": DISPLAY_NAME,
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": self.engine.timezone,
        }
        if url.path == "/ping" or (url.path == "/" and method == "GET" and not url.query):
            self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
            return
        if url.path != "/":
            self._send(404, b"There is no handler for this path\n", {})
            return
        try:
            request = parse_request(method, url.query, self.headers, body)
            result = self.engine.execute(request)
        except QueryFailed as error:
            text = str(error)
            print(f"clickhouse-standin: {text.splitlines()[0][:300]}", file=sys.stderr)
            headers.update(
                {
                    "X-ClickHouse-Exception-Code": str(error.code),
                    "Content-Type": "text/plain; charset=UTF-8",
                }
            )
            self._send(error.status, f"{text}\n".encode(), headers)
            return
        headers["Content-Type"] = _content_type(result.result_format)
        headers["X-ClickHouse-Summary"] = json.dumps(result.summary)
        if result.result_format is not None:
            headers["X-ClickHouse-Format"] = result.result_format
        self._send(200, result.body, headers)


def serve(data_dir: Path, host: str, port: int) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = Engine(data_dir)
    handler = type("BoundHandler", (Handler,), {"engine": engine})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True

    def stop(signum: int, frame: object) -> None:
        # shutdown() waits for serve_forever, which runs in this very thread: ask from another.
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        f"clickhouse-standin: ClickHouse {engine.version} (chdb) on http://{host}:{port}, "
        f"data in {data_dir}",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
        if not engine.close(timeout=10):
            print("clickhouse-standin: queries still running, exiting", file=sys.stderr, flush=True)
            os._exit(1)  # the interpreter's exit would tear chdb down under them


def _answers_ping(port: int) -> bool:
    connection = HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", "/ping")
        return connection.getresponse().read() == b"Ok.\n"
    except OSError:
        return False
    finally:
        connection.close()


def start_clickhouse_standin(
    data_dir: Path, log: Path, *, port: int | None = None, timeout: float = 60.0
) -> tuple[subprocess.Popen[bytes], str]:
    """Start the stand-in on ``data_dir`` in a process of its own, output appended to ``log``;
    returns once it answers /ping, with the process and its URL. ``port`` (default: a free
    one) lets a test restart it where its clients expect it."""
    from scripts.test_services import free_port

    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, Path(__file__).resolve(), "--data", data_dir, "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout
    while not _answers_ping(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the ClickHouse stand-in did not start on {url}:\n{tail}")
        time.sleep(0.1)
    return process, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, required=True, help="the chdb data folder")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    arguments = parser.parse_args()
    serve(arguments.data, arguments.host, arguments.port)


if __name__ == "__main__":
    main()
