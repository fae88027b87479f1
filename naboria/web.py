"""The web role's server: daphne with request limits, started as

    python -m naboria.web -b 0.0.0.0 -p 8000 naboria.asgi:application

with every option of the ``daphne`` command.

Daphne has no option for them, and they cannot live in the ASGI application: Twisted reads a
request's whole body (into memory, or a temporary file above 100 kB) before daphne hands the
application its first byte, and keeps a header line of any length until it ends. So they are
applied where Twisted receives the bytes:

- a body over WEB_MAX_BODY_BYTES is answered 413 from its declared Content-Length, before any
  of it is read, or as soon as a chunked body grows past it; the connection is then closed,
  not read to the end;
- a head (request line and header fields) over request_limits.MAX_HEAD_BYTES or with more
  than MAX_HEADER_FIELDS fields is answered 431 as it arrives (Twisted would answer an empty
  400, or close without a word when a single line is longer than 16 KiB);
- daphne's own refusals (a header, path or query string it cannot decode) are JSON too.

Daphne does not speak the ASGI lifespan protocol either; the web role runs the application's
lifespan startup itself before it listens, as uvicorn does for the ingest role, so both roles
start the same way (naboria.asgi: the event sink is built and replays what an earlier process
spooled, without waiting for a first request). The shutdown half is not sent: daphne exits
normally on SIGTERM, and the sink's exit hook delivers or spools what it holds.

It also listens with a backlog of LISTEN_BACKLOG connections instead of Twisted's 50, and
writes daphne's access log (on by default, to stdout) with each client's address masked
(naboria.log_privacy: no raw IP in any log).
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

# daphne.server installs Twisted's asyncio reactor when imported: before Twisted's own modules.
from daphne import server as daphne_server
from daphne.access import AccessLogGenerator
from daphne.cli import CommandLineInterface
from daphne.http_protocol import HTTPFactory, WebRequest
from django.conf import settings
from twisted.web.http import HTTPChannel

from naboria.log_privacy import mask_address
from naboria.request_limits import MAX_HEAD_BYTES, MAX_HEADER_FIELDS, head_refusal, refusal

# Connections the kernel holds until the server accepts them (capped by net.core.somaxconn).
# Every page view opens an ad stream, and a restart makes every open page reconnect at once:
# beyond Twisted's 50 the kernel dropped the connections, which browsers retried 1, 3, 7, 15
# and 31 s later (bench/ad_delivery.py, run 5). uvicorn, the ingest role, listens with 2048.
LISTEN_BACKLOG = 4096
_LISTENING_KINDS = frozenset({"tcp", "tcp6", "ssl", "unix"})


class LimitedRequest(WebRequest):
    """Daphne's request, refusing a body over its factory's ``max_body_bytes`` as Twisted
    receives it."""

    _received = 0
    _refused = False

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.channel.factory.max_body_bytes:
            self._refuse()
        else:
            super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._received += len(data)
        if self._received > self.channel.factory.max_body_bytes:
            self._refuse()
        else:
            super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        # A refused body may still end within the bytes already received; it is not served.
        if not self._refused:
            super().requestReceived(command, path, version)

    def basic_error(self, status: int, status_text: bytes, body: str) -> None:
        """Daphne's own refusals (a header, path or query string it cannot read; a timeout)
        with a JSON ``error`` like every other refusal, rather than an HTML page."""
        self.handle_reply(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        self.handle_reply(
            {"type": "http.response.body", "body": json.dumps({"error": body}).encode()}
        )

    def _refuse(self) -> None:
        self._refused = True
        # Twisted would otherwise invite the client to send the body (Expect: 100-continue).
        self.requestHeaders.removeHeader(b"expect")
        limit = self.channel.factory.max_body_bytes
        self.channel.transport.write(refusal(413, f"body larger than {limit} bytes"))
        self.channel.loseConnection()


class LimitedChannel(HTTPChannel):
    """Twisted's HTTP/1.1 channel, answering a head over the limits with 431."""

    MAX_LENGTH = MAX_HEAD_BYTES  # the longest line LineReceiver buffers
    _head_bytes = 0
    _head_lines = 0
    _refused = False

    def lineReceived(self, line: bytes) -> None:
        if self._refused:
            return
        self._head_bytes += len(line) + 2
        self._head_lines += 1
        # The request line, the fields and the empty line that ends them.
        if self._head_bytes > MAX_HEAD_BYTES or self._head_lines > MAX_HEADER_FIELDS + 2:
            self._refuse_head()
        else:
            super().lineReceived(line)

    def allHeadersReceived(self) -> None:
        self._head_bytes = self._head_lines = 0  # the next request on this connection
        super().allHeadersReceived()

    def lineLengthExceeded(self, line: bytes) -> None:
        self._refuse_head()

    def _respondToBadRequestAndDisconnect(self) -> None:
        """Twisted's answer to a request it cannot parse (an empty 400), with a JSON error."""
        self._refuse(refusal(400, "malformed HTTP request"))

    def _refuse_head(self) -> None:
        self._refuse(head_refusal())

    def _refuse(self, response: bytes) -> None:
        self._refused = True
        # Typed as a zope interface, whose methods mypy cannot call.
        transport: Any = self.transport
        transport.write(response)
        self.loseConnection()


class LimitedHTTPFactory(HTTPFactory):
    """Daphne's factory, building limited channels and requests. HTTP/1.1 only: daphne speaks
    HTTP/2 only over its own TLS, which the web role leaves to the load balancer."""

    protocol = LimitedChannel

    def __init__(self, server: daphne_server.Server) -> None:
        super().__init__(server)
        self.max_body_bytes: int = server.max_body_bytes

    def buildProtocol(self, addr: object) -> LimitedChannel:
        channel: LimitedChannel = super().buildProtocol(addr)
        channel.requestFactory = LimitedRequest
        return channel

    def acceptableProtocols(self) -> list[bytes]:
        return [b"http/1.1"]


class MaskingAccessLog(AccessLogGenerator):
    """Daphne's access log (NCSA-like lines) with the client's address masked."""

    def write_entry(
        self,
        host: str | None,
        date: Any,
        request: str,
        status: int | None = None,
        length: int | None = None,
        ident: str | None = None,
        user: str | None = None,
    ) -> None:
        super().write_entry(
            host=mask_address(host) if host else "-",
            date=date,
            request=request,
            status=status,
            length=length,
            ident=ident,
            user=user,
        )


class LifespanStartupFailed(RuntimeError):
    """The application answered lifespan.startup.failed: the role must not serve."""


async def lifespan_startup(application: Any) -> None:
    """Send ``application`` the ASGI lifespan startup and wait until it is complete (an
    application without lifespan support, which ends or raises at once, is left at that)."""
    messages: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    messages.put_nowait({"type": "lifespan.startup"})
    answered: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def send(message: dict[str, Any]) -> None:
        if not answered.done():
            answered.set_result(message)

    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
    task = asyncio.ensure_future(application(scope, messages.get, send))
    await asyncio.wait([task, answered], return_when=asyncio.FIRST_COMPLETED)
    task.cancel()  # it now waits for a shutdown message that never comes
    if answered.done() and answered.result()["type"] == "lifespan.startup.failed":
        raise LifespanStartupFailed(answered.result().get("message", ""))


def with_backlog(endpoint: str) -> str:
    """A Twisted endpoint description that listens with LISTEN_BACKLOG, unless it sets a
    backlog of its own or is a socket already listening (``fd:``)."""
    kind = endpoint.split(":", 1)[0]
    if kind not in _LISTENING_KINDS or "backlog=" in endpoint:
        return endpoint
    return f"{endpoint}:backlog={LISTEN_BACKLOG}"


class WebServer(daphne_server.Server):
    """Daphne's server with the limits (the body limit is WEB_MAX_BODY_BYTES), the backlog,
    and the application's lifespan startup before it listens."""

    def __init__(
        self,
        *args: object,
        endpoints: list[str] | None = None,
        action_logger: object = None,
        **kwargs: object,
    ) -> None:
        if isinstance(action_logger, AccessLogGenerator):  # daphne's, which writes raw IPs
            action_logger = MaskingAccessLog(action_logger.stream)
        super().__init__(
            *args,
            endpoints=[with_backlog(item) for item in endpoints or []],
            action_logger=action_logger,
            **kwargs,
        )
        self.max_body_bytes: int = settings.WEB_MAX_BODY_BYTES

    def run(self) -> None:
        # In a thread with a loop of its own: the reactor's loop must not run before
        # Server.run starts it.
        failure: list[BaseException] = []

        def start() -> None:
            try:
                asyncio.run(lifespan_startup(self.application))
            except BaseException as error:  # re-raised in the main thread
                failure.append(error)

        thread = threading.Thread(target=start, name="lifespan-startup")
        thread.start()
        thread.join()
        if failure:
            raise failure[0]
        super().run()


class WebCommand(CommandLineInterface):
    description = "Naboria's web role: daphne with request limits"
    server_class = WebServer


def main() -> None:
    # Server.run builds its HTTP factory from this module-level name, and offers no other way
    # to choose one.
    daphne_server.HTTPFactory = LimitedHTTPFactory
    WebCommand.entrypoint()


if __name__ == "__main__":
    main()
