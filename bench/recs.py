"""Recommendations benchmark (issue 16): latency of GET /recs/items at a fixed rate (goal: p99
under 5 ms at 1,000 requests/s), next to a trivial ASGI app on the same server as the baseline,
measured in the same run. Run under the test services, which provide Redis:

    .venv/bin/python scripts/test_services.py .venv/bin/python bench/recs.py [--rate 1000] [--seconds 15]

Needs hey (installed with apt-get when missing, as bench/ingest_pipeline.py does). Prepares a throw-away installation (SQLite, the demo site with
recommendations switched on), stores a popular list of 50 pages for it in Redis as the periodic
job would (the job's ClickHouse query is not what is measured: it runs every 5 minutes, not
per request) and 100 visited paths for one visitor, starts one uvicorn process (the ingest
role) with the product and one with bench/noop_asgi.py, then runs hey at ``--rate`` requests/s
against each:

1. the baseline (trivial ASGI app);
2. a reference on the product's server: GET /region, an existing lean endpoint that touches no
   store either (the site's config, the country of the IP), which shows what the server
   process itself adds;
3. /recs/items for an anonymous visitor (popular pages but the current one);
4. /recs/items for a visitor with a browser id, a valid token and analytics consent (popular
   pages but the 100 they visited: the token is checked and their visits read from Redis).

Prints requests/s, p50 and p99 of each and the ratio of each p99 to the baseline's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest_pipeline import ensure_load_tools
from scripts.test_services import (
    ROOT,
    free_port,
    prepare_demo,
    throwaway_environment,
    wait_for_port,
)

USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
POPULAR = 50
VISITED = 100
# The server's core (the last); hey runs on the others (bench/RESULTS.md run 6).
SERVER_CORE = (os.cpu_count() or 2) - 1
WORKERS = 20  # hey's concurrent clients, each at rate / WORKERS requests/s


def start_uvicorn(env: dict[str, str], application: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--lifespan",
            "off",
            application,
        ],
        cwd=ROOT,
        env=env,
        # The server on the last core, the load generator on the others: on a 2-core machine
        # they would otherwise take turns, and the tail would be the scheduler's.
        preexec_fn=lambda: os.sched_setaffinity(0, {SERVER_CORE}),
    )
    wait_for_port(port, application)
    return process, port


def hey(url: str, seconds: int, rate: int) -> dict[str, float]:
    output = subprocess.run(
        [
            "hey",
            "-z",
            f"{seconds}s",
            "-c",
            str(WORKERS),
            "-q",
            f"{rate / WORKERS:.1f}",
            "-H",
            f"User-Agent: {USER_AGENT}",
            url,
        ],
        capture_output=True,
        preexec_fn=lambda: os.sched_setaffinity(0, set(range(SERVER_CORE)) or {0}),
        text=True,
        check=True,
    ).stdout
    codes = re.findall(r"\[(\d{3})\]\s+(\d+) responses", output)
    if any(not code.startswith("2") for code, _ in codes):  # the baseline answers 202
        raise RuntimeError(f"failed answers from {url}:\n{output}")

    def percentile(p: int) -> float:
        found = re.search(rf"\b{p}%+ in ([\d.]+) secs", output)
        assert found, output
        return float(found.group(1)) * 1000

    achieved = re.search(r"Requests/sec:\s+([\d.]+)", output)
    assert achieved, output
    return {"rps": float(achieved.group(1)), "p50": percentile(50), "p99": percentile(99)}


def prepare(site_id: str) -> dict[str, str]:
    """Switch recommendations on for the demo site, store its popular list and one visitor's
    visits; the query strings of the two requests measured."""
    import django

    django.setup()
    from ingest.identity import issue_token
    from naboria import redis_client
    from recs import keys
    from sites.models import Site
    from sites.selectors import site_secrets_valid

    site = Site.objects.get(public_id=site_id)
    site.recommendations_enabled = True
    site.save()
    host = next(domain for domain in site.allowed_domains if not domain.startswith("*."))
    origin = f"http://{host}"
    items = [
        {"path": f"/page-{number}", "url": f"{origin}/page-{number}", "title": f"Page {number}"}
        for number in range(POPULAR)
    ]
    redis = redis_client.sync_client()
    redis.set(keys.popular(site_id), json.dumps(items))
    bid = "bench-visitor"
    visits = keys.visits(site_id, bid)
    redis.delete(visits)
    # The visitor saw every other popular page and 75 pages that are not popular.
    redis.zadd(visits, {f"/page-{number}": number for number in range(0, POPULAR, 2)})
    redis.zadd(visits, {f"/old-{number}": number for number in range(VISITED - POPULAR // 2)})
    token = issue_token(secret=site_secrets_valid(site=site)[0], bid=bid, site_id=site_id)
    anonymous = {"site": site_id, "url": f"{origin}/page-3"}
    return {
        "anonymous": urlencode(anonymous),
        "personal": urlencode({**anonymous, "bid": bid, "token": token, "consent": "analytics"}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=1000, help="requests/s (default 1000)")
    parser.add_argument("--seconds", type=int, default=15)
    options = parser.parse_args()
    if not os.environ.get("REDIS_URL"):
        sys.exit("run under scripts/test_services.py (Redis is needed)")
    ensure_load_tools()
    work = Path(tempfile.mkdtemp(prefix="naboria-recs-bench-"))
    env = throwaway_environment(work)
    _, site_id = prepare_demo(env)
    # This process writes the fixtures; it never opens the server's chdb folder.
    os.environ.update({**env, "NABORIA_VAR_DIR": str(work / "bench")})
    queries = prepare(site_id)
    results = [
        f"machine: {os.cpu_count()} cores; Python {sys.version.split()[0]}; load average "
        f"{os.getloadavg()[0]:.1f} at the start; {options.rate} req/s for {options.seconds} s each"
    ]
    server, port = start_uvicorn(env, "naboria.asgi:application")
    noop, noop_port = start_uvicorn(env, "bench.noop_asgi:application")
    try:
        base = f"http://127.0.0.1:{port}/recs/items?"
        for query in queries.values():  # warm up: the site's config and the popular list
            hey(base + query, 2, 100)
        baseline = hey(f"http://127.0.0.1:{noop_port}/", options.seconds, options.rate)
        results.append(
            f"baseline (trivial ASGI on uvicorn): {baseline['rps']:,.0f} req/s, "
            f"p50 {baseline['p50']:.2f} ms, p99 {baseline['p99']:.2f} ms"
        )
        print(results[-1], flush=True)
        region = hey(
            f"http://127.0.0.1:{port}/region?site={site_id}", options.seconds, options.rate
        )
        results.append(
            f"reference GET /region on the product's server: {region['rps']:,.0f} req/s, "
            f"p50 {region['p50']:.2f} ms, p99 {region['p99']:.2f} ms "
            f"(ratio to the baseline's p99 {region['p99'] / baseline['p99']:.2f})"
        )
        print(results[-1], flush=True)
        for name, query in queries.items():
            figures = hey(base + query, options.seconds, options.rate)
            results.append(
                f"/recs/items {name}: {figures['rps']:,.0f} req/s, p50 {figures['p50']:.2f} ms, "
                f"p99 {figures['p99']:.2f} ms (goal < 5 ms; "
                f"ratio to the baseline's p99 {figures['p99'] / baseline['p99']:.2f})"
            )
            print(results[-1], flush=True)
        results.append(f"load average {os.getloadavg()[0]:.1f} at the end")
        print("\n".join(["", "summary:", *results]))
    finally:
        for process in (server, noop):
            process.terminate()
            process.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
