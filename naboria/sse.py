"""Server-sent events over Channels, shared by the ad stream (ads.streams) and the dashboard's
realtime stream (analytics.streams).

AsyncHttpConsumer ends the response when ``handle()`` returns. A ``StreamConsumer`` instead
answers the request (or refuses it) in ``open()`` and then runs ``stream()`` in a task of its
own, so the consumer stays free to receive ``http.disconnect`` and cancel the task.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qsl

from channels.exceptions import StopConsumer
from channels.generic.http import AsyncHttpConsumer

HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),  # nginx: pass events through at once
]


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class StreamConsumer(AsyncHttpConsumer):
    task: asyncio.Task[None] | None = None

    async def open(
        self, headers: dict[str, str], query: dict[str, str]
    ) -> list[tuple[bytes, bytes]]:
        """Check the request; extra response headers, or raise Refused."""
        raise NotImplementedError

    async def stream(self) -> None:
        raise NotImplementedError

    async def http_request(self, message: dict[str, Any]) -> None:
        if message.get("more_body"):
            return
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in self.scope["headers"]
        }
        query = dict(parse_qsl(self.scope.get("query_string", b"").decode("latin-1")))
        try:
            extra = await self.open(headers, query)
        except Refused as refusal:
            await self.send_response(
                refusal.status,
                json.dumps({"error": refusal.message}).encode(),
                headers=[(b"content-type", b"application/json"), *self.cors(headers)],
            )
            await self.disconnect()
            raise StopConsumer() from None
        await self.send_headers(headers=[*HEADERS, *extra, *self.cors(headers)])
        self.task = asyncio.create_task(self.stream())

    @staticmethod
    def cors(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
        origin = headers.get("origin")
        return [(b"access-control-allow-origin", origin.encode())] if origin else []

    async def send_event(self, event: str, data: Any, event_id: str | None = None) -> None:
        await self.send_json_event(event, json.dumps(data), event_id)

    async def send_json_event(self, event: str, data: str, event_id: str | None = None) -> None:
        """An event whose data is JSON encoded already (on one line)."""
        prefix = f"id: {event_id}\n" if event_id else ""
        await self.send_body(f"{prefix}event: {event}\ndata: {data}\n\n".encode(), more_body=True)

    async def disconnect(self) -> None:
        if self.task is not None:
            self.task.cancel()
