"""Each web process's in-memory copy of what ad delivery needs: live ads by site and placements
by key, loaded from MongoDB (never read per request) and reloaded when publishing broadcasts a
change on the channel layer, or at the latest every REFRESH_SECONDS.

Open SSE streams subscribe to changes (``changes.subscribe()``) to re-decide at once.
Entry points: current(), ensure_listening(), changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from ads.delivery import LiveAd, PlacementSlot
from ads.documents import DeliveryAdDocument, DeliveryPlacementDocument
from ads.publishing import CHANGES_GROUP
from naboria import mongo

logger = logging.getLogger(__name__)
REFRESH_SECONDS = 60.0


@dataclass(frozen=True)
class Snapshot:
    ads_by_site: dict[int, tuple[LiveAd, ...]] = field(default_factory=dict)
    slots_by_key: dict[str, PlacementSlot] = field(default_factory=dict)
    campaign_frequency_periods: dict[int, int] = field(default_factory=dict)
    loaded_at: float = 0.0
    generation: int = 0

    def ads_for(self, slot: PlacementSlot) -> tuple[LiveAd, ...]:
        return self.ads_by_site.get(slot.site_id, ())


_lock = threading.Lock()
_current = Snapshot()


def load() -> Snapshot:
    """Read both collections and replace the process's snapshot."""
    global _current
    mongo.connect()
    by_site: dict[int, list[LiveAd]] = {}
    periods: dict[int, int] = {}
    for document in DeliveryAdDocument.objects.only("body").as_pymongo():
        ad = LiveAd.from_document(document["body"])
        periods[ad.campaign_id] = ad.limits.frequency_period_seconds
        for site_id in ad.site_ids:
            by_site.setdefault(site_id, []).append(ad)
    slots = {
        document["body"]["key"]: PlacementSlot(
            **{
                **document["body"],
                "sizes": frozenset(document["body"]["sizes"]),
                "formats": frozenset(document["body"]["formats"]),
            }
        )
        for document in DeliveryPlacementDocument.objects.only("body").as_pymongo()
    }
    with _lock:
        _current = Snapshot(
            ads_by_site={site: tuple(ads) for site, ads in by_site.items()},
            slots_by_key=slots,
            campaign_frequency_periods=periods,
            loaded_at=time.monotonic(),
            generation=_current.generation + 1,
        )
        return _current


def current_if_fresh() -> Snapshot | None:
    """The snapshot if it needs no (re)load; never touches MongoDB."""
    snapshot = _current
    if snapshot.loaded_at and time.monotonic() - snapshot.loaded_at <= REFRESH_SECONDS:
        return snapshot
    return None


def current() -> Snapshot:
    """The snapshot, loaded (again) first if it is missing or older than REFRESH_SECONDS."""
    return current_if_fresh() or load()


class Changes:
    """In-process fan-out of "delivery changed" to open streams: one channel-layer listener per
    process, however many streams it holds."""

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Event] = set()

    def subscribe(self) -> asyncio.Event:
        event = asyncio.Event()
        self._subscribers.add(event)
        return event

    def unsubscribe(self, event: asyncio.Event) -> None:
        self._subscribers.discard(event)

    def publish(self) -> None:
        for event in self._subscribers:
            event.set()

    def __len__(self) -> int:
        return len(self._subscribers)


changes = Changes()
_listener: asyncio.Task[None] | None = None


async def ensure_listening() -> None:
    """Start this process's listener for publishing broadcasts (once per event loop)."""
    global _listener
    if _listener is None or _listener.done():
        _listener = asyncio.get_running_loop().create_task(_listen())


async def _listen() -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(CHANGES_GROUP, channel)
    try:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                # Group membership expires in the layer; renew it well before.
                await asyncio.wait_for(layer.receive(channel), timeout=20)
                await sync_to_async(load, thread_sensitive=False)()
                changes.publish()
                continue
            await layer.group_add(CHANGES_GROUP, channel)
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("delivery change listener stopped; snapshots refresh by age only")
