"""The HTTP protocol of the ingest role's uvicorn: uvicorn's httptools protocol with limits on a
request's head, which httptools does not have (it keeps a header of any length, and any number
of them: 200 MiB in one header took 47 s and as much memory). Started as

    uvicorn naboria.asgi:application --http naboria.ingest_http:HttpToolsProtocol ...

A head (request line and header fields) over request_limits.MAX_HEAD_BYTES or with more than
MAX_HEADER_FIELDS fields is answered 431 and the connection closed: as soon as the head still
unfinished has grown past the limit (one read more at most), or when it ends.

Requests httptools cannot parse are answered 400 with a JSON ``error`` (uvicorn: plain text).

Bodies need nothing here: uvicorn hands them to the application as they arrive (pausing the
socket above 64 KiB unread), and the application refuses them (ingest.asgi,
naboria.request_limits.BodyLimitMiddleware).
"""

from __future__ import annotations

from uvicorn.protocols.http import httptools_impl

from naboria.request_limits import MAX_HEAD_BYTES, MAX_HEADER_FIELDS, head_refusal, refusal


class HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head that was refused."""


class HttpToolsProtocol(httptools_impl.HttpToolsProtocol):
    _head_open = False
    _head_bytes = 0  # of the request line and the fields parsed so far
    _head_fields = 0
    _unfinished_bytes = 0  # of reads that began and ended inside the same head

    def data_received(self, data: bytes) -> None:
        head_was_open = self._head_open
        super().data_received(data)
        if head_was_open and self._head_open and not self.transport.is_closing():
            # The whole read belongs to a head that is not finished yet: httptools keeps it.
            self._unfinished_bytes += len(data)
            if self._unfinished_bytes > MAX_HEAD_BYTES:
                self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open = True
        self._head_bytes = self._head_fields = self._unfinished_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4  # ": " and CRLF
        self._head_fields += 1
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_open = False
        if self._head_bytes > MAX_HEAD_BYTES or self._head_fields > MAX_HEADER_FIELDS:
            self._refuse_head()
            # Parsing stops; uvicorn logs "Invalid HTTP request received." and, the
            # connection being closed already, sends nothing more (send_400_response below).
            raise HeadTooLarge
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request httptools cannot parse, as JSON like every other
        refusal; nothing if the head was refused with a 431 already."""
        if not self.transport.is_closing():
            self.transport.write(refusal(400, msg))
            self.transport.close()

    def _refuse_head(self) -> None:
        self.transport.write(head_refusal())
        self.transport.close()
