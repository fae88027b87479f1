"""Prometheus metrics shared by every process role, and the request-metrics middleware.

Metrics are module-level collectors in the default registry; ``GET /metrics`` renders them
(see naboria.views.metrics). Other apps define their own collectors next to the code they
measure and import nothing from here but the registry conventions: names start ``naboria_``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse
from prometheus_client import Counter, Gauge, Histogram

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
