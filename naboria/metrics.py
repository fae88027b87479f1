"""Prometheus metrics shared by every process role, the request-metrics middleware, and the
metrics port of the roles that serve no HTTP (``serve_metrics``: the drain).

Metrics are module-level collectors in the default registry; ``GET /metrics`` renders them
(see naboria.views.metrics). Other apps define their own collectors next to the code they
measure and import nothing from here but the registry conventions: names start ``naboria_``.

``LEAN_REQUESTS`` counts the requests of the lean endpoints (ingest.asgi) and adds them to
the request metrics in batches, and always before the registry is read.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.registry import Collector


class RequestTally(Collector):
    """Requests counted here and added to HTTP_REQUESTS and HTTP_LATENCY in batches of
    BATCH_REQUESTS, and whenever the registry is read: observing each request in
    prometheus_client (a lock and a Python loop over the buckets per series) took about a tenth
    of a 1-event /collect (bench/RESULTS.md run 18). Registered in the registry ahead of the
    metrics it feeds, which it updates when collected, so every reading is exact."""

    BATCH_REQUESTS = 1000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, int], int] = {}
        self._latencies: list[tuple[str, float]] = []

    def record(self, *, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
            self._latencies.append((route, seconds))
            full = len(self._latencies) >= self.BATCH_REQUESTS
        if full:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, {}
            latencies, self._latencies = self._latencies, []
        for (route, method, status), count in counts.items():
            HTTP_REQUESTS.labels(route, method, str(status)).inc(count)
        # labels() costs several µs a call: looked up once per route, not per request.
        series: dict[str, Any] = {}
        for route, seconds in latencies:
            histogram = series.get(route)
            if histogram is None:
                histogram = series[route] = HTTP_LATENCY.labels(route)
            histogram.observe(seconds)

    def describe(self) -> Iterable[Any]:
        return []  # no metric of its own

    def collect(self) -> Iterable[Any]:
        self.flush()
        return []


LEAN_REQUESTS = RequestTally()
REGISTRY.register(LEAN_REQUESTS)

HTTP_REQUESTS = Counter(
    "naboria_http_requests_total",
    "HTTP requests answered, by route pattern, method and status code.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "naboria_http_request_duration_seconds",
    "Time from request to response, by route pattern.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
DEPENDENCY_UP = Gauge(
    "naboria_dependency_up", "1 if the last health check of a dependency passed.", ["dependency"]
)
DEPENDENCY_LATENCY = Gauge(
    "naboria_dependency_latency_seconds",
    "Latency of the last health check of a dependency.",
    ["dependency"],
)


def _route(request: HttpRequest) -> str:
    # The URL pattern, not the path: paths carry ids and would explode the label set.
    match = getattr(request, "resolver_match", None)
    return match.route if match is not None and match.route else "unmatched"


class RequestMetricsMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def _observe(self, request: HttpRequest, response: HttpResponse, started: float) -> None:
        route = _route(request)
        HTTP_REQUESTS.labels(route, request.method or "", str(response.status_code)).inc()
        HTTP_LATENCY.labels(route).observe(time.perf_counter() - started)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        started = time.perf_counter()
        response = self.get_response(request)
        self._observe(request, response, started)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = await self.get_response(request)
        self._observe(request, response, started)
        return response


def metrics_token_accepted(authorization: str) -> bool:
    """Whether a request's Authorization header may read metrics (any, without METRICS_TOKEN)."""
    if not settings.METRICS_TOKEN:
        return True
    supplied = authorization.removeprefix("Bearer ").strip()
    return hmac.compare_digest(supplied, settings.METRICS_TOKEN)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape a second would flood the role's log


def serve_metrics(*, port: int, address: str = "127.0.0.1") -> WSGIServer:
    """Serve this process's registry at ``http://address:port/metrics`` (any path answers) in a
    daemon thread, with the same METRICS_TOKEN check as the web role's /metrics."""
    exposition = make_wsgi_app(REGISTRY)

    def application(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if not metrics_token_accepted(environ.get("HTTP_AUTHORIZATION", "")):
            start_response("401 Unauthorized", [("Content-Type", "text/plain")])
            return [b"metrics need Authorization: Bearer <METRICS_TOKEN>\n"]
        body: Iterable[bytes] = exposition(environ, start_response)
        return body

    server = make_server(
        address, port, application, server_class=_ThreadingServer, handler_class=_QuietHandler
    )
    threading.Thread(target=server.serve_forever, name="metrics-server", daemon=True).start()
    return server
