"""The lean endpoints' request metrics (naboria.metrics.RequestTally): counted in batches, yet
exact whenever the registry is read, from any thread."""

from __future__ import annotations

import threading

from prometheus_client import REGISTRY, generate_latest

from naboria.metrics import HTTP_REQUESTS, LEAN_REQUESTS, RequestTally


def _counted(route: str, status: str) -> float:
    # Read without collecting (collecting would add the batch first).
    return HTTP_REQUESTS.labels(route, "POST", status)._value.get()


def _exposed(route: str, status: str) -> float:
    sample = f'naboria_http_requests_total{{method="POST",route="{route}",status="{status}"}}'
    line = next(line for line in generate_latest(REGISTRY).decode().splitlines() if sample in line)
    return float(line.rsplit(" ", 1)[1])


def test_every_request_is_in_the_metrics_when_they_are_read():
    before = _counted("tally-read", "202")
    latencies_before = (
        REGISTRY.get_sample_value(
            "naboria_http_request_duration_seconds_count", {"route": "tally-read"}
        )
        or 0.0
    )
    for _ in range(7):
        LEAN_REQUESTS.record(route="tally-read", method="POST", status=202, seconds=0.004)
    LEAN_REQUESTS.record(route="tally-read", method="POST", status=503, seconds=5.0)
    assert _counted("tally-read", "202") == before  # still in the batch ...
    assert _exposed("tally-read", "202") == before + 7  # ... added when the registry is read
    assert _counted("tally-read", "503") >= 1
    assert (
        REGISTRY.get_sample_value(
            "naboria_http_request_duration_seconds_count", {"route": "tally-read"}
        )
        == latencies_before + 8
    )
    assert (
        REGISTRY.get_sample_value(
            "naboria_http_request_duration_seconds_bucket", {"route": "tally-read", "le": "0.005"}
        )
        == latencies_before + 7
    )


def test_a_full_batch_is_added_without_waiting_for_a_reading():
    tally = RequestTally()  # not registered: only batches reach the metrics
    before = _counted("tally-batch", "202")
    for _ in range(RequestTally.BATCH_REQUESTS - 1):
        tally.record(route="tally-batch", method="POST", status=202, seconds=0.001)
    assert _counted("tally-batch", "202") == before
    tally.record(route="tally-batch", method="POST", status=202, seconds=0.001)
    assert _counted("tally-batch", "202") == before + RequestTally.BATCH_REQUESTS


def test_requests_recorded_from_several_threads_are_all_counted():
    before = _counted("tally-threads", "202")

    def requests() -> None:
        for _ in range(5_000):
            LEAN_REQUESTS.record(route="tally-threads", method="POST", status=202, seconds=0.001)

    threads = [threading.Thread(target=requests) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(20):
        generate_latest(REGISTRY)  # readings meanwhile, on this thread
    for thread in threads:
        thread.join()
    assert _exposed("tally-threads", "202") == before + 20_000
