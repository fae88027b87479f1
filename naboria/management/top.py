"""What ``manage.py top`` shows: samples of the roles' Prometheus metrics, and the frame made
from two of them.

A **sample** is one read of one role's ``/metrics`` (Prometheus text, parsed by
prometheus_client's parser). Counters only grow, so every rate in a **frame** is the growth of
a counter between two samples of the same role divided by the seconds between them; a counter
that shrank belongs to a restarted process and counts from zero. Gauges (buffer, lag, memory)
are the later sample's values. Roles are summed where the numbers add up (events, rows,
inserts) and kept apart where they do not (each process's buffer, CPU and memory); a
partition's lag is reported by the drain that reads it, and realtime visitors, which every web
process reports alike, are taken once (the largest).

The metrics it reads are the ones docs/operations.md lists; their names are the contract.

Entry points: ``read_sample(source, token=...)``, ``make_frame(before, after, visitors=...)``,
``render_text(frame)`` (plain text) and ``render_rich(frame)`` (a rich renderable).
"""

from __future__ import annotations

import math
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Group
from rich.table import Table

# The metrics a frame is made of (exported by naboria.metrics, ingest.sinks, ingest.drain,
# ingest.storage, analytics.metrics and prometheus_client's process collector).
ACCEPTED = "naboria_ingest_events_total"
HTTP_REQUESTS = "naboria_http_requests_total"
SINK_FULL = "naboria_ingest_sink_full_total"
BUFFERED = "naboria_ingest_buffered_events"
BUFFER_CAPACITY = "naboria_ingest_buffer_capacity_events"
DRAIN_ROWS = "naboria_drain_rows_total"
LAG = "naboria_drain_lag_messages"
INSERT_SECONDS = "naboria_clickhouse_insert_seconds"
VISITORS = "naboria_realtime_visitors"
CPU_SECONDS = "process_cpu_seconds_total"
MEMORY = "process_resident_memory_bytes"
# The routes (the ``route`` label of the lean tracking application) whose refusals are events
# refused: /collect batches and /p.gif pageviews.
EVENT_ROUTES = frozenset({"collect", "p.gif"})

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Source:
    role: str
    url: str

    @classmethod
    def parse(cls, value: str) -> Source:
        """``[ROLE=]URL``; without a role, the URL's host and port name it."""
        role, separator, url = value.partition("=")
        if not separator or "://" in role:
            role, url = "", value
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"not an http(s) URL: {url!r}")
        return cls(role or url.split("://", 1)[1].split("/", 1)[0], url)


@dataclass
class Sample:
    role: str
    taken: float  # time.monotonic() when read
    values: dict[str, dict[Labels, float]] = field(default_factory=dict)
    error: str = ""

    def series(self, name: str) -> dict[Labels, float]:
        return self.values.get(name, {})

    def total(self, name: str) -> float:
        return sum(self.series(name).values())


def parse_sample(role: str, text: str, *, taken: float) -> Sample:
    sample = Sample(role, taken)
    for family in text_string_to_metric_families(text):
        for point in family.samples:
            labels = tuple(sorted(point.labels.items()))
            sample.values.setdefault(point.name, {})[labels] = point.value
    return sample


def read_sample(source: Source, *, token: str = "", timeout: float = 5.0) -> Sample:
    """One read of ``source``; a role that cannot be read gives a sample with ``error``."""
    request = urllib.request.Request(source.url)  # noqa: S310 (Source.parse allows http(s) only)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    taken = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            text = answer.read().decode()
    except urllib.error.HTTPError as error:
        return Sample(source.role, taken, error=f"HTTP {error.code} {error.reason}")
    except (OSError, ValueError) as error:
        return Sample(source.role, taken, error=str(getattr(error, "reason", error)))
    try:
        return parse_sample(source.role, text, taken=taken)
    except ValueError as error:
        return Sample(source.role, taken, error=f"not Prometheus text: {error}")


def _growth(before: float, after: float) -> float:
    return after - before if after >= before else after  # shrank: the process restarted


def _series_growth(before: Sample, after: Sample, name: str) -> dict[Labels, float]:
    earlier = before.series(name)
    return {
        labels: _growth(earlier.get(labels, 0.0), value)
        for labels, value in after.series(name).items()
    }


@dataclass(frozen=True)
class RoleFrame:
    role: str
    error: str = ""
    accepted_per_second: float = 0.0
    accepted_total: float = 0.0
    refused_per_second: float = 0.0
    refused_total: float = 0.0
    buffer_full_per_second: float = 0.0
    buffered: float | None = None
    buffer_capacity: float | None = None
    drain_rows_per_second: float = 0.0
    cpu_percent: float | None = None
    memory_bytes: float | None = None


@dataclass(frozen=True)
class InsertLatency:
    inserts: float  # in the frame's interval
    mean_seconds: float | None
    p95_seconds: float | None


@dataclass(frozen=True)
class Frame:
    seconds: float
    roles: list[RoleFrame]
    drain_rows_per_second: dict[str, float]  # by consumer, every role summed
    lag: dict[tuple[str, int], float]  # (consumer, partition) -> messages
    inserts: dict[str, InsertLatency]  # by table, every role together
    visitors: dict[str, int] | None  # site -> visitors; None when not read
    visitors_error: str = ""
    site_names: dict[str, str] = field(default_factory=dict)

    @property
    def accepted_per_second(self) -> float:
        return sum(role.accepted_per_second for role in self.roles)

    @property
    def refused_per_second(self) -> float:
        return sum(role.refused_per_second for role in self.roles)


def _refusals(sample: Sample) -> dict[Labels, float]:
    return {
        labels: value
        for labels, value in sample.series(HTTP_REQUESTS).items()
        if dict(labels).get("route") in EVENT_ROUTES and dict(labels).get("status", "")[:1] in "45"
    }


def _role_frame(before: Sample, after: Sample) -> RoleFrame:
    if after.error or before.error:
        return RoleFrame(after.role, error=after.error or before.error)
    seconds = max(after.taken - before.taken, 1e-6)

    def rate(name: str) -> float:
        return sum(_series_growth(before, after, name).values()) / seconds

    earlier = _refusals(before)
    refused = sum(
        _growth(earlier.get(labels, 0.0), value) for labels, value in _refusals(after).items()
    )
    capacity = after.total(BUFFER_CAPACITY) if after.series(BUFFER_CAPACITY) else None
    cpu = rate(CPU_SECONDS) * 100 if after.series(CPU_SECONDS) else None
    return RoleFrame(
        after.role,
        accepted_per_second=rate(ACCEPTED),
        accepted_total=after.total(ACCEPTED),
        refused_per_second=refused / seconds,
        refused_total=sum(_refusals(after).values()),
        buffer_full_per_second=rate(SINK_FULL),
        buffered=after.total(BUFFERED) if after.series(BUFFERED) else None,
        buffer_capacity=capacity,
        drain_rows_per_second=rate(DRAIN_ROWS),
        cpu_percent=cpu,
        memory_bytes=after.total(MEMORY) if after.series(MEMORY) else None,
    )


def _quantile(quantile: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus's histogram_quantile over cumulative ``(upper bound, count)`` buckets: linear
    within the bucket the quantile falls in; the largest finite bound if it is the +Inf one."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = quantile * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * ((rank - below) / max(count - below, 1e-12))
        lower, below = bound, count
    return lower


def _insert_latency(pairs: Sequence[tuple[Sample, Sample]]) -> dict[str, InsertLatency]:
    counts: dict[str, float] = defaultdict(float)
    sums: dict[str, float] = defaultdict(float)
    buckets: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for before, after in pairs:
        for labels, grown in _series_growth(before, after, INSERT_SECONDS + "_count").items():
            counts[dict(labels)["table"]] += grown
        for labels, grown in _series_growth(before, after, INSERT_SECONDS + "_sum").items():
            sums[dict(labels)["table"]] += grown
        for labels, grown in _series_growth(before, after, INSERT_SECONDS + "_bucket").items():
            named = dict(labels)
            buckets[named["table"]][float(named["le"])] += grown
    return {
        table: InsertLatency(
            inserts=count,
            mean_seconds=sums[table] / count if count else None,
            p95_seconds=_quantile(0.95, sorted(buckets[table].items())) if count else None,
        )
        for table, count in sorted(counts.items())
    }


def make_frame(
    before: Sequence[Sample],
    after: Sequence[Sample],
    *,
    visitors: dict[str, int] | None = None,
    visitors_error: str = "",
    site_names: dict[str, str] | None = None,
) -> Frame:
    """The frame between two reads of the same roles (``before[i]`` and ``after[i]``).
    ``visitors`` given (read locally) wins over the roles' ``naboria_realtime_visitors``."""
    pairs = list(zip(before, after, strict=True))
    readable = [(earlier, later) for earlier, later in pairs if not (earlier.error or later.error)]
    drained: dict[str, float] = defaultdict(float)
    lag: dict[tuple[str, int], float] = {}
    exported: dict[str, int] = {}
    for earlier, later in readable:
        seconds = max(later.taken - earlier.taken, 1e-6)
        for labels, grown in _series_growth(earlier, later, DRAIN_ROWS).items():
            drained[dict(labels)["consumer"]] += grown / seconds
        for labels, value in later.series(LAG).items():
            named = dict(labels)
            key = (named["consumer"], int(named["partition"]))
            lag[key] = max(lag.get(key, 0.0), value)
        for labels, value in later.series(VISITORS).items():
            site = dict(labels)["site"]
            exported[site] = max(exported.get(site, 0), int(value))
    if (
        visitors is None
        and not visitors_error
        and any(later.series(VISITORS) for _, later in readable)
    ):
        visitors = exported
    seconds = max((later.taken - earlier.taken for earlier, later in pairs), default=0.0)
    return Frame(
        seconds=seconds,
        roles=[_role_frame(earlier, later) for earlier, later in pairs],
        drain_rows_per_second=dict(sorted(drained.items())),
        lag=dict(sorted(lag.items())),
        inserts=_insert_latency(readable),
        visitors=visitors,
        visitors_error=visitors_error,
        site_names=site_names or {},
    )


# --- rendering ------------------------------------------------------------------------------


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}{unit}"
    return f"{value:,.1f}{unit}"


def _bytes(value: float | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return "-"  # unreachable: the loop returns at GiB


def _milliseconds(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def _insert_line(latency: InsertLatency) -> str:
    return (
        f"{_number(latency.inserts)} inserts, mean {_milliseconds(latency.mean_seconds)}, "
        f"p95 {_milliseconds(latency.p95_seconds)}"
    )


def _fill(role: RoleFrame) -> str:
    if role.buffered is None:
        return "-"
    if not role.buffer_capacity:
        return _number(role.buffered)
    percent = 100 * role.buffered / role.buffer_capacity
    return f"{_number(role.buffered)}/{_number(role.buffer_capacity)} ({percent:.1f}%)"


def _site(frame: Frame, site: str) -> str:
    name = frame.site_names.get(site)
    return f"{name} ({site})" if name else site


def role_rows(frame: Frame) -> list[list[str]]:
    """Header and one row per role: the table both renderers show."""
    rows = [
        ["role", "accepted/s", "refused/s", "503 full/s", "buffer", "drain rows/s", "cpu", "memory"]
    ]
    for role in frame.roles:
        if role.error:
            rows.append([role.role, f"unreadable: {role.error}", "", "", "", "", "", ""])
            continue
        rows.append(
            [
                role.role,
                f"{_number(role.accepted_per_second)} (total {_number(role.accepted_total)})",
                f"{_number(role.refused_per_second)} (total {_number(role.refused_total)})",
                _number(role.buffer_full_per_second),
                _fill(role),
                _number(role.drain_rows_per_second),
                _number(role.cpu_percent, "%"),
                _bytes(role.memory_bytes),
            ]
        )
    return rows


def _visitor_lines(frame: Frame) -> list[str]:
    if frame.visitors_error:
        return [f"  not read: {frame.visitors_error}"]
    if frame.visitors is None:
        return [
            "  not exported by these roles (a web role exports them while its ClickHouse answers)"
        ]
    if not frame.visitors:
        return ["  none"]
    ordered = sorted(frame.visitors.items(), key=lambda item: (-item[1], item[0]))
    return [f"  {_site(frame, site)}: {count}" for site, count in ordered]


def render_text(frame: Frame) -> str:
    """The frame as plain text (no TTY, ``--once``): aligned columns, no colours."""
    table = role_rows(frame)
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]
    lines = [
        f"naboria top: rates over {frame.seconds:.2f} s; "
        f"events accepted {_number(frame.accepted_per_second)}/s, "
        f"refused {_number(frame.refused_per_second)}/s",
        "",
    ]
    lines += [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in table
    ]
    lines += ["", "drain rows/s by consumer:"]
    lines += [
        f"  {consumer}: {_number(rate)}" for consumer, rate in frame.drain_rows_per_second.items()
    ] or ["  -"]
    lines += ["", "Kafka lag by partition (messages not committed):"]
    lines += [
        f"  {consumer}[{partition}]: {_number(lag)}"
        for (consumer, partition), lag in frame.lag.items()
    ] or ["  -"]
    lines += ["", "ClickHouse inserts (this interval):"]
    lines += [
        f"  {table}: {_insert_line(latency)}" for table, latency in frame.inserts.items()
    ] or ["  -"]
    lines += ["", "realtime visitors by site (last 5 minutes):"]
    lines += _visitor_lines(frame)
    return "\n".join(lines) + "\n"


def render_rich(frame: Frame) -> Group:
    """The frame as a rich renderable, for the refreshing screen on a terminal."""
    table = role_rows(frame)
    roles = Table(title=f"naboria top (rates over {frame.seconds:.2f} s)", expand=True)
    for header in table[0]:
        roles.add_column(header, justify="left" if header == "role" else "right")
    for row in table[1:]:
        roles.add_row(*row, style="red" if row[1].startswith("unreadable") else None)
    details = Table(expand=True, show_header=True)
    details.add_column("drain rows/s")
    details.add_column("Kafka lag")
    details.add_column("ClickHouse inserts")
    details.add_column("realtime visitors")
    details.add_row(
        "\n".join(
            f"{consumer}: {_number(rate)}" for consumer, rate in frame.drain_rows_per_second.items()
        )
        or "-",
        "\n".join(
            f"{consumer}[{partition}]: {_number(lag)}"
            for (consumer, partition), lag in frame.lag.items()
        )
        or "-",
        "\n".join(f"{table}: {_insert_line(latency)}" for table, latency in frame.inserts.items())
        or "-",
        "\n".join(line.strip() for line in _visitor_lines(frame)),
    )
    return Group(roles, details)


def read_all(sources: Iterable[Source], *, token: str) -> list[Sample]:
    return [read_sample(source, token=token) for source in sources]
