"""Ad delivery benchmark (issue 4/6). Run under the test services, which provide Redis (the
channel layer that carries publishing broadcasts between processes) and MongoDB (secantusdb):

    .venv/bin/python scripts/test_services.py .venv/bin/python bench/ad_delivery.py

1. decision latency in process: choose_ad over 200 live ads (p50, p99), and the whole
   serving.decide (snapshot + counters + decision);
2. SSE: N concurrent streams (default 5,000) held by one web process (the web role as deployed,
   ``python -m naboria.web``: daphne), from a client in this process: time until every stream
   has its first ad, the server's memory per stream, and the time from publishing a campaign
   change until every stream has received the new ad;
3. listing requests/s from wrk (separate process), next to a trivial ASGI app on the same
   server (bench/noop_asgi.py) as the baseline.

``--server-log FILE`` keeps the ad server's output (its errors, the access log).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import percentile
from bench.ingest_pipeline import ensure_load_tools
from scripts.test_services import (
    ROOT,
    free_port,
    prepare_demo,
    throwaway_environment,
    wait_for_port,
)


def decision_benchmark() -> list[str]:
    from ads.decisioning import choose_ad
    from ads.delivery import (
        CampaignDelivery,
        Creative,
        DeliveryContext,
        Limits,
        LiveAd,
        PlacementSlot,
        Targeting,
    )

    rng = random.Random(7)  # noqa: S311 (a benchmark's draws)
    now = datetime.now(UTC)
    ads = [
        LiveAd(
            ad_id=number,
            campaign_id=number // 2,
            advertiser_id=1,
            organization_id=1,
            site_ids=frozenset({1}),
            priority=rng.randint(1, 3),
            weight=rng.randint(1, 100),
            starts_at=now - timedelta(days=1),
            ends_at=now + timedelta(days=30),
            creative=Creative(kind="image", width=300, height=250),
            targeting=Targeting(
                countries=frozenset({"FR", "DE"}) if number % 3 else frozenset(),
                path_patterns=("/shoes/*",) if number % 5 == 0 else (),
                hours=frozenset(range(6, 23)) if number % 7 == 0 else frozenset(),
            ),
            limits=Limits(daily_cap=100_000, frequency_cap=5, frequency_period_seconds=86400),
        )
        for number in range(200)
    ]
    slot = PlacementSlot(
        placement_id=10,
        site_id=1,
        key="k",
        sizes=frozenset({"300x250"}),
        formats=frozenset(),
        timezone="Europe/Paris",
    )
    delivery = {ad.campaign_id: CampaignDelivery(today=500, lifetime=5000) for ad in ads}
    context = DeliveryContext(
        site_id=1,
        path="/shoes/red",
        country="FR",
        device="mobile",
        now=now,
        personalised=False,
        frequency=dict.fromkeys(delivery, 1),
    )
    timings = []
    for _ in range(20_000):
        started = time.perf_counter()
        choose_ad(ads=ads, slot=slot, context=context, delivery=delivery, rng=rng)
        timings.append(time.perf_counter() - started)
    line = (
        f"decision over 200 live ads: p50 {percentile(timings, 0.5) * 1e6:.0f} µs, "
        f"p99 {percentile(timings, 0.99) * 1e6:.0f} µs (target p99 < 2 ms)"
    )
    print(line, flush=True)
    return [line]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class StreamClient:
    """Many SSE connections; counts ``ad`` events per connection as they arrive."""

    def __init__(self, port: int, path: str) -> None:
        self.port, self.path = port, path
        self.ads: list[int] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def _one(self, index: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(
            f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://127.0.0.1\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        await writer.drain()
        while line := await reader.readline():
            if line.startswith(b"event: ad"):
                self.ads[index] += 1

    async def open(self, count: int) -> None:
        self.ads = [0] * count
        for index in range(count):
            self.tasks.append(asyncio.create_task(self._one(index)))
            if index % 200 == 199:
                await asyncio.sleep(0.05)  # let the server accept the burst

    async def until(self, predicate, timeout: float) -> float:  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        while not predicate():
            if time.perf_counter() - started > timeout:
                break
            await asyncio.sleep(0.01)
        return time.perf_counter() - started

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()


async def stream_benchmark(port: int, server_pid: int, placement: str, streams: int) -> list[str]:
    from asgiref.sync import sync_to_async

    from ads.models import Campaign
    from ads.publishing import campaigns_publish

    warm = StreamClient(port, f"/ads/stream?placement={placement}&path=/")
    await warm.open(20)  # the first streams load the snapshot, counters and code paths
    await warm.until(lambda: all(warm.ads), timeout=30)
    await asyncio.sleep(1)
    before = rss_kib(server_pid)
    client = StreamClient(port, f"/ads/stream?placement={placement}&path=/")
    started = time.perf_counter()
    await client.open(streams)
    await client.until(lambda: all(client.ads), timeout=60)
    opened = time.perf_counter() - started
    connected = sum(1 for count in client.ads if count)
    live = [index for index, count in enumerate(client.ads) if count]
    await asyncio.sleep(2)
    after = rss_kib(server_pid)
    per_stream = (after - before) / max(connected, 1)

    baseline = list(client.ads)

    def publish_change() -> None:
        campaigns_publish(campaigns=Campaign.objects.all())  # new ad versions: streams re-decide

    published = time.perf_counter()
    await sync_to_async(publish_change)()
    reach = await client.until(
        lambda: all(client.ads[index] > baseline[index] for index in live), timeout=30
    )
    reached = sum(1 for index in live if client.ads[index] > baseline[index])
    reach_from_publish = time.perf_counter() - published
    client.close()
    warm.close()
    line = (
        f"SSE: {connected:,}/{streams:,} streams with their first ad in {opened:.1f} s; server "
        f"memory {before / 1024:.0f} -> {after / 1024:.0f} MiB = {per_stream:.1f} KiB per stream; "
        f"a campaign change reached {reached:,} streams in {reach:.2f} s "
        f"({reach_from_publish:.2f} s including the publish)"
    )
    print(line, flush=True)
    return [line]


def wrk(url: str, seconds: int) -> float:
    output = subprocess.run(
        ["wrk", "-t1", "-c32", f"-d{seconds}s", url], capture_output=True, text=True, check=True
    ).stdout
    for line in output.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise RuntimeError(output)


def start_daphne(
    env: dict[str, str], application: str, log: Path | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    output = log.open("ab") if log is not None else subprocess.DEVNULL
    # The web role's server as deployed: daphne with request limits and its listen backlog.
    process = subprocess.Popen(
        [sys.executable, "-m", "naboria.web", "-b", "127.0.0.1", "-p", str(port), application],
        cwd=ROOT,
        env=env,
        stdout=output,
        stderr=output,
    )
    wait_for_port(port, "daphne")
    return process, port


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=5000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument(
        "--server-log", type=Path, help="append the ad server's output (stdout, stderr) here"
    )
    options = parser.parse_args()
    if not os.environ.get("MONGODB_URL") or not os.environ.get("REDIS_URL"):
        sys.exit("run under scripts/test_services.py (Redis and MongoDB are needed)")
    ensure_load_tools()
    work = Path(tempfile.mkdtemp(prefix="naboria-ads-bench-"))
    env = throwaway_environment(work)
    output, _ = prepare_demo(env)
    placement = next(
        line.split("key ")[1].rstrip(")")
        for line in output.splitlines()
        if line.startswith("Demo placement:")
    )
    # This process publishes changes and measures; it never opens the server's chdb folder.
    os.environ.update({**env, "NABORIA_VAR_DIR": str(work / "bench")})
    import django

    django.setup()
    # Other work on the machine moves every figure (p99 most): the load comes with them.
    results = [
        f"machine: {os.cpu_count()} cores; Python {sys.version.split()[0]}; load average "
        f"{os.getloadavg()[0]:.1f} at the start"
    ]
    results += decision_benchmark()
    server, port = start_daphne(env, "naboria.asgi:application", options.server_log)
    noop, noop_port = start_daphne(env, "bench.noop_asgi:application")
    try:
        results += asyncio.run(stream_benchmark(port, server.pid, placement, options.streams))
        listing = wrk(f"http://127.0.0.1:{port}/ads/listing?placement={placement}", options.seconds)
        baseline = wrk(f"http://127.0.0.1:{noop_port}/", options.seconds)
        line = (
            f"listing (daphne, 1 process): {listing:,.0f} req/s | trivial ASGI on daphne "
            f"{baseline:,.0f} req/s (ratio {listing / baseline:.2f})"
        )
        print(line, flush=True)
        results.append(line)
        results.append(f"load average {os.getloadavg()[0]:.1f} at the end")
        print("\n".join(["", "summary:", *results]))
    finally:
        for process in (server, noop):
            process.terminate()
            process.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
