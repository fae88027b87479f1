"""manage.py top's frames: rates from the growth of counters between two reads of each role's
/metrics, rendered from Prometheus text that prometheus_client itself wrote."""

from __future__ import annotations

import io

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from rich.console import Console

from naboria.management.top import Source, make_frame, parse_sample, render_rich, render_text


class Role:
    """A process's metrics under the names the product exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.accepted = Counter("naboria_ingest_events", "", ["table"], registry=self.registry)
        self.requests = Counter(
            "naboria_http_requests", "", ["route", "method", "status"], registry=self.registry
        )
        self.full = Counter("naboria_ingest_sink_full", "", registry=self.registry)
        self.buffered = Gauge("naboria_ingest_buffered_events", "", registry=self.registry)
        self.capacity = Gauge("naboria_ingest_buffer_capacity_events", "", registry=self.registry)
        self.rows = Counter("naboria_drain_rows", "", ["consumer"], registry=self.registry)
        self.lag = Gauge(
            "naboria_drain_lag_messages", "", ["consumer", "partition"], registry=self.registry
        )
        self.inserts = Histogram(
            "naboria_clickhouse_insert_seconds",
            "",
            ["table"],
            buckets=(0.01, 0.1, 1),
            registry=self.registry,
        )
        self.visitors = Gauge("naboria_realtime_visitors", "", ["site"], registry=self.registry)
        self.cpu = Counter("process_cpu_seconds", "", registry=self.registry)
        self.memory = Gauge("process_resident_memory_bytes", "", registry=self.registry)

    def sample(self, role: str, taken: float):
        return parse_sample(role, generate_latest(self.registry).decode(), taken=taken)


def test_rates_are_the_growth_of_counters_between_two_reads():
    web = Role()
    web.accepted.labels("page_events").inc(100)
    web.requests.labels("collect", "POST", "202").inc(10)
    web.requests.labels("collect", "POST", "400").inc(1)
    web.capacity.set(1000)
    web.cpu.inc(5)
    before = web.sample("web", 10.0)
    web.accepted.labels("page_events").inc(50)
    web.accepted.labels("ad_events").inc(10)
    web.requests.labels("collect", "POST", "202").inc(5)
    web.requests.labels("collect", "POST", "400").inc(3)
    web.requests.labels("collect", "POST", "503").inc(1)
    web.requests.labels("p.gif", "GET", "400").inc(2)
    web.requests.labels("api/v1/sites/", "GET", "404").inc(7)  # no event was refused
    web.full.inc(1)
    web.buffered.set(250)
    web.cpu.inc(0.5)
    web.memory.set(64 * 1024 * 1024)
    frame = make_frame([before], [web.sample("web", 12.0)])

    (role,) = frame.roles
    assert frame.seconds == 2.0
    assert role.accepted_per_second == 30.0  # (50 + 10) / 2
    assert role.accepted_total == 160
    assert role.refused_per_second == 3.0  # (3 + 1 + 2) / 2
    assert role.refused_total == 7
    assert role.buffer_full_per_second == 0.5
    assert (role.buffered, role.buffer_capacity) == (250, 1000)
    assert role.cpu_percent == 25.0
    text = render_text(frame)
    assert "events accepted 30/s, refused 3/s" in text
    assert "250/1,000 (25.0%)" in text
    assert "64.0 MiB" in text


def test_a_restarted_process_counts_from_zero():
    web = Role()
    web.accepted.labels("page_events").inc(1000)
    before = web.sample("web", 0.0)
    restarted = Role()
    restarted.accepted.labels("page_events").inc(40)
    frame = make_frame([before], [restarted.sample("web", 1.0)])
    assert frame.roles[0].accepted_per_second == 40


def test_drain_rows_add_up_lag_is_per_partition_and_visitors_count_once():
    web, drain_a, drain_b = Role(), Role(), Role()
    web.visitors.labels("site-1").set(3)
    ingest = Role()
    ingest.visitors.labels("site-1").set(3)  # the same report, from another web process
    ingest.visitors.labels("site-2").set(1)
    before = [role.sample(name, 0.0) for name, role in (("a", drain_a), ("b", drain_b))]
    drain_a.rows.labels("page-events").inc(300)
    drain_b.rows.labels("page-events").inc(100)
    drain_b.rows.labels("ad-events").inc(4)
    drain_a.lag.labels("page-events", "0").set(12)
    drain_b.lag.labels("page-events", "1").set(0)
    after = [role.sample(name, 2.0) for name, role in (("a", drain_a), ("b", drain_b))]
    frame = make_frame(
        [*before, web.sample("web", 0.0), ingest.sample("ingest", 0.0)],
        [*after, web.sample("web", 2.0), ingest.sample("ingest", 2.0)],
    )
    assert frame.drain_rows_per_second == {"ad-events": 2.0, "page-events": 200.0}
    assert frame.lag == {("page-events", 0): 12, ("page-events", 1): 0}
    assert frame.visitors == {"site-1": 3, "site-2": 1}
    text = render_text(frame)
    assert "page-events[0]: 12" in text
    assert "site-1: 3" in text

    local = make_frame(before, after, visitors={"site-9": 5}, site_names={"site-9": "Shop"})
    assert local.visitors == {"site-9": 5}
    assert "Shop (site-9): 5" in render_text(local)


def test_insert_latency_is_the_mean_and_p95_of_the_inserts_between_reads():
    drain = Role()
    drain.inserts.labels("page_events").observe(5.0)  # before the frame: not in it
    before = drain.sample("drain", 0.0)
    for _ in range(19):
        drain.inserts.labels("page_events").observe(0.005)
    drain.inserts.labels("page_events").observe(0.405)
    frame = make_frame([before], [drain.sample("drain", 1.0)])
    latency = frame.inserts["page_events"]
    assert latency.inserts == 20
    assert latency.mean_seconds == pytest.approx((19 * 0.005 + 0.405) / 20)
    # 95 % of 20 = 19 inserts fall in the first bucket (<= 10 ms): interpolated within it.
    assert latency.p95_seconds == pytest.approx(0.01)
    assert "page_events: 20 inserts, mean 25.0 ms, p95 10.0 ms" in render_text(frame)


def test_an_unreadable_role_is_shown_and_the_others_still_count():
    web = Role()
    before = [web.sample("web", 0.0), parse_sample("drain", "", taken=0.0)]
    web.accepted.labels("page_events").inc(8)
    broken = parse_sample("drain", "", taken=1.0)
    broken.error = "HTTP 401 Unauthorized"
    frame = make_frame(before, [web.sample("web", 1.0), broken])
    assert frame.accepted_per_second == 8
    assert "drain  unreadable: HTTP 401 Unauthorized" in render_text(frame)
    assert "not exported by these roles" in render_text(frame)


def test_sources_are_named_by_their_role_or_address():
    assert Source.parse("drain=http://10.0.0.5:9102/metrics") == Source(
        "drain", "http://10.0.0.5:9102/metrics"
    )
    assert Source.parse("https://naboria.example/metrics").role == "naboria.example"
    with pytest.raises(ValueError, match="not an http"):
        Source.parse("web=file:///etc/passwd")


def test_the_terminal_screen_shows_the_same_numbers():
    web = Role()
    before = web.sample("web", 0.0)
    web.accepted.labels("page_events").inc(42)
    web.lag.labels("page-events", "3").set(17)
    web.visitors.labels("site-1").set(2)
    console = Console(record=True, width=160, file=io.StringIO())
    console.print(render_rich(make_frame([before], [web.sample("web", 1.0)])))
    screen = console.export_text()
    assert "42 (total 42)" in screen
    assert "page-events[3]: 17" in screen
    assert "site-1: 2" in screen
