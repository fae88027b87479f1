"""The dashboard's realtime panel: ``GET /dashboard/<site public id>/realtime``, an SSE stream
(Channels, session authentication) sending the realtime report every PUSH_SECONDS."""

from __future__ import annotations

import asyncio
import re

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async

from analytics.reports.traffic import realtime
from naboria.sse import Refused, StreamConsumer
from sites.selectors import sites_readable_by

PUSH_SECONDS = 5.0
PATH = re.compile(r"^/dashboard/(?P<site>[A-Za-z0-9]{1,32})/realtime$")


@database_sync_to_async
def _readable(user: object, public_id: str) -> bool:
    return sites_readable_by(principal=user).filter(public_id=public_id).exists()


class RealtimeStream(StreamConsumer):
    async def open(
        self, headers: dict[str, str], query: dict[str, str]
    ) -> list[tuple[bytes, bytes]]:
        match = PATH.match(self.scope["path"])
        user = self.scope.get("user")
        if match is None or user is None or not user.is_authenticated:
            raise Refused(403, "sign in to the admin to see realtime visitors")
        self.site = match["site"]
        if not await _readable(user, self.site):
            raise Refused(404, "no such site among yours")
        return []

    async def stream(self) -> None:
        while True:
            answer = await sync_to_async(realtime, thread_sensitive=False)(site_id=self.site)
            await self.send_event("realtime", answer)
            await asyncio.sleep(PUSH_SECONDS)
