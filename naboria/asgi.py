"""ASGI entry point of the web role (``python -m naboria.web naboria.asgi:application``) and
of the ingest role (uvicorn, with ``--lifespan on``).

Serves the tracking endpoints (ingest.asgi, outside Django's request cycle because they are the
hot path; the ad server's and the recommendations' request/response endpoints the same way)
and, for every other path, Django: views, the REST API and the admin. Before it
serves, it checks every configured backend (NABORIA_STARTUP_CHECKS) so a wrong URL fails at
start with one line.

The ASGI lifespan (uvicorn sends it, daphne does not) builds the event sink at start, so events
spooled by an earlier process are sent again at once (docs/durability.md), and closes it at
shutdown: uvicorn ends by raising the signal it received again, which kills the process before
any exit hook runs, so this is where an ingest process delivers or spools what it accepted.
The web role's daphne exits normally, and the sink's exit hook does the same there.
"""

import asyncio
import gc
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from naboria.config import exit_on_configuration_error
from naboria.request_limits import BodyLimitMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "naboria.settings")


def _at_start(work: Callable[[], object]) -> None:
    """Run start-up work that queries the database. uvicorn with --workers imports this module
    inside each worker's running event loop, where Django refuses synchronous queries
    (SynchronousOnlyOperation): there the work runs in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        work()
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(work).result()


with exit_on_configuration_error():
    from django.conf import settings
    from django.core.asgi import get_asgi_application

    # Django and Channels read a whole body before looking at it; the lean paths have a limit of
    # their own.
    django_application = BodyLimitMiddleware(get_asgi_application(), settings.WEB_MAX_BODY_BYTES)

    if settings.STARTUP_CHECKS:
        from naboria.health import assert_dependencies_reachable

        _at_start(assert_dependencies_reachable)

    if not settings.MONGODB_URL:
        # The embedded document store lives in memory: rebuild it from the SQL database.
        from ads.publishing import republish_all

        _at_start(republish_all)

    if not settings.REDIS_URL:
        # The embedded Redis lives in memory too: the popular pages come back from ClickHouse
        # now rather than at the job's next run.
        from recs.services import popular_pages_refresh_all

        _at_start(popular_pages_refresh_all)

    if settings.EMBEDDED_BEAT:
        from naboria import embedded_beat

        embedded_beat.start()

    from channels.auth import AuthMiddlewareStack

    from ads.endpoints import ENDPOINTS as AD_ENDPOINTS
    from ads.streams import AdStream
    from analytics.streams import PATH as REALTIME_PATH
    from analytics.streams import RealtimeStream
    from ingest.asgi import TRACKING_PATHS, lean_application, tracking_application
    from ingest.sinks import get_sink, reset_sink
    from recs.endpoints import ENDPOINTS as RECS_ENDPOINTS

    ad_stream = BodyLimitMiddleware(AdStream.as_asgi(), settings.WEB_MAX_BODY_BYTES)
    # The dashboard's realtime stream needs the admin session's user.
    realtime_stream = BodyLimitMiddleware(
        AuthMiddlewareStack(RealtimeStream.as_asgi()), settings.WEB_MAX_BODY_BYTES
    )
    ad_application = lean_application(AD_ENDPOINTS)
    recs_application = lean_application(RECS_ENDPOINTS)

# Everything loaded so far (Django, apps, URL patterns) lives as long as the process: keep it
# out of the garbage collector's full passes, which otherwise show up as request-latency spikes.
gc.freeze()
# A web process holding thousands of SSE streams has ~130 long-lived objects per stream (its
# connection, request, consumer, tasks). At the default thresholds (700, 10, 10) the young
# collections promoted whatever was in flight (a change re-decides every stream at once), and
# every 25 % of growth of the old generation set off a full pass over all of it: with 5,000
# streams about a second each, once per broadcast and five times while they opened
# (bench/ad_delivery.py, run 5). Larger young generations let in-flight objects die first.
gc.set_threshold(50_000, 20, 10)


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """HTTP by path (the tracking endpoints first: the hot path, one call away from the
    server), and the ASGI lifespan."""
    if scope["type"] == "http":
        path = scope["path"]
        if path in TRACKING_PATHS:
            await tracking_application(scope, receive, send)
        elif path == "/ads/stream":
            await ad_stream(scope, receive, send)
        elif path in AD_ENDPOINTS:
            await ad_application(scope, receive, send)
        elif path in RECS_ENDPOINTS:
            await recs_application(scope, receive, send)
        elif REALTIME_PATH.match(path):
            await realtime_stream(scope, receive, send)
        else:
            await django_application(scope, receive, send)
    elif scope["type"] == "lifespan":
        await _lifespan(receive, send)
    else:
        raise ValueError(f"no application for ASGI scope type {scope['type']!r}")


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await asyncio.to_thread(get_sink)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await asyncio.to_thread(reset_sink)
            await send({"type": "lifespan.shutdown.complete"})
            return
