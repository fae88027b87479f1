"""The SSE ad stream of a web page's placement: ``GET /ads/stream?placement=<key>&path=…``
(``text/event-stream``), a Channels consumer mounted in naboria.asgi.

It sends the first ad at once, a new decision every rotation interval of the placement, a new
one as soon as publishing changes what may be shown (the process's snapshot broadcasts it), and
a heartbeat comment every HEARTBEAT_SECONDS so proxies keep the connection. A stream that
fails (e.g. its counters cannot be read) ends its response: the browser reconnects. A rotation's
decision rotates away from the ad on screen only as far as the shares as sold allow (see
ads.decisioning): it may be the same ad again, sent as a new impression so that the shares of
impressions are the ones sold. Every ``ad`` event carries an ``id``
(``<ad id>.<ad version>.<shown at, ms>``): a browser that reconnects sends it back as
Last-Event-ID and keeps its ad until its rotation is due, if the ad is still live. A disconnect
cancels the stream's task and its subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from prometheus_client import Gauge

from ads import serving
from ads.delivery import LiveAd, PlacementSlot
from ads.snapshot import changes, ensure_listening
from ingest.http import Refusal, request_host
from naboria.sse import Refused, StreamConsumer

logger = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 15.0
OPEN_STREAMS = Gauge("naboria_ad_streams_open", "Ad SSE streams open in this process.")


class AdStream(StreamConsumer):
    async def open(
        self, headers: dict[str, str], query: dict[str, str]
    ) -> list[tuple[bytes, bytes]]:
        try:
            slot = await serving.placement(query.get("placement", ""))
            viewer = await serving.viewer_for(
                slot=slot,
                query=query,
                headers=headers,
                remote_addr=(self.scope.get("client") or ("", 0))[0],
            )
            host = request_host(headers, self.scope.get("scheme", "http"))
        except Refusal as refusal:
            raise Refused(refusal.status, refusal.message) from None
        await ensure_listening()
        self.slot, self.viewer, self.host = slot, viewer, host
        self.resume = headers.get("last-event-id") or query.get("lastEventId", "")
        return []

    async def stream(self) -> None:
        slot, viewer, host = self.slot, self.viewer, self.host
        changed = changes.subscribe()
        OPEN_STREAMS.inc()
        try:
            shown: LiveAd | None = None
            due = 0.0  # monotonic time of the next rotation
            kept = _resumed(self.resume, (await serving.snapshot()).ads_for(slot))
            if kept is not None:
                shown, shown_at_ms = kept
                due = (
                    time.monotonic()
                    + slot.rotation_seconds
                    - (time.time() * 1000 - shown_at_ms) / 1000
                )
            while True:
                now = time.monotonic()
                if shown is None or now >= due or changed.is_set():
                    changed.clear()
                    live = {ad.ad_id: ad for ad in (await serving.snapshot()).ads_for(slot)}
                    still_live = shown is not None and live.get(shown.ad_id) == shown
                    if shown is None or now >= due or not still_live:
                        chosen = await serving.decide(
                            slot=slot, viewer=viewer, avoid=rotation_avoid(shown)
                        )
                        shown = chosen[0] if chosen else None
                        await self._send_ad(shown, slot, host)
                        due = time.monotonic() + slot.rotation_seconds
                with contextlib.suppress(TimeoutError):
                    wait = min(max(due - time.monotonic(), 0.05), HEARTBEAT_SECONDS)
                    # asyncio.timeout, not wait_for: no task of its own for each wait of
                    # thousands of streams woken at once by a change.
                    async with asyncio.timeout(wait):
                        await changed.wait()
                    continue
                if time.monotonic() < due:
                    await self.send_body(b": heartbeat\n\n", more_body=True)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("ad stream for placement %s failed", slot.key)
            # Ended, so that the browser's EventSource reconnects (after its retry delay)
            # instead of waiting on an open response that will never send another event.
            with contextlib.suppress(Exception):
                await self.send_body(b"", more_body=False)
        finally:
            changes.unsubscribe(changed)
            OPEN_STREAMS.dec()

    async def _send_ad(self, ad: LiveAd | None, slot: PlacementSlot, host: str) -> None:
        if ad is None:
            await self.send_body(b"event: none\ndata: {}\n\n", more_body=True)
            return
        issued = serving.delivery(ad, slot, serving.new_impression_id())
        payload = serving.rendering_json(ad=ad, slot=slot, issued=issued, host=host)
        event_id = f"{ad.ad_id}.{ad.version}.{int(time.time() * 1000)}"
        await self.send_json_event("ad", payload, event_id)


def rotation_avoid(shown: LiveAd | None) -> frozenset[int]:
    """What a stream's next decision rotates away from: the ad on screen, if any."""
    return frozenset({shown.ad_id}) if shown is not None else frozenset()


def _resumed(last_event_id: str, ads: tuple[LiveAd, ...]) -> tuple[LiveAd, float] | None:
    """The ad a reconnecting browser shows and when it was shown, if it is still live as is."""
    try:
        ad_id, version, shown_at_ms = (int(part) for part in last_event_id.split("."))
    except ValueError:
        return None
    for ad in ads:
        if ad.ad_id == ad_id and ad.version == version:
            return ad, float(shown_at_ms)
    return None
