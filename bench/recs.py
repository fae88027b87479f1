"""Recommendations benchmark (issue 16): latency of GET /recs/items at a fixed rate (goal: p99
under 5 ms at 1,000 requests/s), next to a trivial ASGI app on the same server as the baseline,
measured in the same run. Run under the test services, which provide Redis:

    .venv/bin/python scripts/test_services.py .venv/bin/python bench/recs.py [--rate 1000] [--seconds 15]

Needs hey (installed with apt-get when missing, as bench/ingest_pipeline.py does). Prepares a
throw-away installation (SQLite, the demo site with recommendations switched on), stores a
popular list of 50 pages for it in Redis as the periodic job would (the job's ClickHouse query
is not what is measured: it runs every 5 minutes, not per request), 100 visited paths for one
visitor and that visitor's consent decision (analytics granted), starts one uvicorn process
(the ingest role) with the product and one with bench/noop_asgi.py on the last core, checks
that the personal request gets a personal answer, then runs hey on the other cores at
``--rate`` requests/s against each:

1. the baseline (trivial ASGI app);
2. a reference on the product's server: GET /region, an existing lean endpoint that touches no
   store either (the site's config, the country of the IP), which shows what the server
   process itself adds;
3. /recs/items for an anonymous visitor (popular pages but the current one);
4. /recs/items for a visitor with a browser id, a valid token and analytics consent (popular
   pages but the 100 they visited: the token is checked and their visits read from Redis).

Each under two shapes of the rate (see ``hey``): 20 clients in step, whose requests come in
bursts, and 20 clients spread over time.
Prints requests/s, p50 and p99 of each and the ratio of each p99 to the baseline's.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode
from urllib.request import urlopen

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


def hey(url: str, seconds: int, rate: int, *, in_step: bool) -> dict[str, float]:
    """Requests/s, p50 and p99 (ms) of GET ``url`` at ``rate`` requests/s for ``seconds``,
    from WORKERS clients at rate / WORKERS each. ``in_step``: the clients of one hey process,
    whose timers tick together, so requests come in bursts of WORKERS every WORKERS / rate s
    (the harshest shape of that rate); otherwise one hey process per client, started 1 / rate
    s apart, so requests arrive spread over time as independent visitors' do."""
    command = ["hey", "-z", f"{seconds}s", "-q", f"{rate / WORKERS:.1f}", "-o", "csv"]
    command += ["-H", f"User-Agent: {USER_AGENT}"]
    if in_step:
        clients = [[*command, "-c", str(WORKERS), url]]
    else:
        clients = [[*command, "-c", "1", url]] * WORKERS
    processes = []
    for arguments in clients:
        processes.append(
            subprocess.Popen(
                arguments,
                stdout=subprocess.PIPE,
                text=True,
                preexec_fn=lambda: os.sched_setaffinity(0, set(range(SERVER_CORE)) or {0}),
            )
        )
        time.sleep(1 / rate)
    times, failed = [], []
    for process in processes:
        output, _ = process.communicate()
        for row in csv.DictReader(io.StringIO(output)):
            times.append(float(row["response-time"]) * 1000)
            if not row["status-code"].startswith("2"):  # the baseline answers 202
                failed.append(row["status-code"])
    if failed or not times:
        raise RuntimeError(f"{len(failed)} failed answers from {url}: {sorted(set(failed))}")
    return {
        "rps": len(times) / seconds,
        "p50": percentile(times, 0.5),
        "p99": percentile(times, 0.99),
    }


def prepare(site_id: str) -> dict[str, str]:
    """Switch recommendations on for the demo site, store its popular list, one visitor's
    visits and that visitor's consent decision; the query strings of the two requests
    measured."""
    import django

    django.setup()
    from consent.services import consent_banner_ensure, consent_record_create
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
    # Analytics granted on the demo's banner, as the banner would record it: without a
    # decision the server accepts, the request would get the anonymous answer.
    consent_record_create(
        site_public_id=site_id,
        visitor_id=bid,
        visitor_id_kind="browser",
        granted=["necessary", "analytics"],
        denied=["ads"],
        banner_version=consent_banner_ensure(site=site).version,
    )
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
        server_url = f"http://127.0.0.1:{port}"
        base = f"{server_url}/recs/items?"
        for name, query in queries.items():  # warm up: the site's config and the popular list
            hey(base + query, 2, 100, in_step=True)
            answer = json.loads(urlopen(base + query, timeout=10).read())
            # The personal request must really be answered from the visitor's signals.
            if answer["personal"] != (name == "personal") or len(answer["items"]) != 5:
                raise RuntimeError(f"unexpected answer to the {name} request: {answer}")
        targets = [
            ("baseline (trivial ASGI on uvicorn)", f"http://127.0.0.1:{noop_port}/"),
            (
                "reference GET /region on the product's server",
                f"{server_url}/region?site={site_id}",
            ),
            *((f"/recs/items {name}", base + query) for name, query in queries.items()),
        ]
        for in_step in (True, False):
            shape = "in step (bursts)" if in_step else "spread"
            results.append(f"{WORKERS} clients {shape}:")
            baseline_p99 = 0.0
            for label, url in targets:
                figures = hey(url, options.seconds, options.rate, in_step=in_step)
                baseline_p99 = baseline_p99 or figures["p99"]
                results.append(
                    f"  {label}: {figures['rps']:,.0f} req/s, p50 {figures['p50']:.2f} ms, "
                    f"p99 {figures['p99']:.2f} ms "
                    f"(ratio to the baseline's p99 {figures['p99'] / baseline_p99:.2f})"
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
