"""Geolocation cost on the ingest hot path (issue 16 part 5, "Region and city"): one
ingest.geo.locate (country, region and city from the shipped DB-IP City Lite files, or the
operator's GEO_CITY_DATABASE) next to the country-only lookup it replaced (iptocc's
country_code) as the baseline, measured in the same run on the same addresses, and the share
of a whole request's enrichment (RequestFacts.from_headers) each takes.

    .venv/bin/python bench/geo.py            # --addresses 100000 --rounds 5

Addresses: half picked from the database's own networks (so most are located down to a city),
half uniformly random IPv4 and IPv6 (unallocated, private and unknown ones included), in a
fixed random order; every round times each function on all of them. Needs `make geodata`.
"""

from __future__ import annotations

import argparse
import ipaddress
import itertools
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import maxminddb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


def addresses(count: int, rng: random.Random, files: list[Path]) -> list[str]:
    """Half from the networks of ``files`` (IPv4, IPv6), half random (see the docstring)."""
    known: list[str] = []
    for path in files:
        with maxminddb.open_database(path) as reader:
            networks = [network for network, _ in itertools.islice(reader, 200_000)]
        for network in rng.sample(networks, count // 4):
            known.append(str(network[rng.randrange(network.num_addresses)]))
    random_v4 = [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(count // 4)]
    random_v6 = [str(ipaddress.IPv6Address(rng.getrandbits(128))) for _ in range(count // 4)]
    mixed = known + random_v4 + random_v6
    rng.shuffle(mixed)
    return mixed


def per_call_ns(function: Callable[[str], object], inputs: list[str]) -> float:
    start = time.perf_counter_ns()
    for ip in inputs:
        function(ip)
    return (time.perf_counter_ns() - start) / len(inputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addresses", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "naboria.settings")
    import django

    django.setup()
    from django.conf import settings
    from iptocc import country_code

    from ingest import geo
    from ingest.services import RequestFacts

    def request_facts(ip: str) -> object:
        # The user agent is cached after its first parse, as in production.
        return RequestFacts.from_headers(
            headers={"user-agent": CHROME}, remote_addr=ip, trusted_proxies=0
        )

    rng = random.Random(7)  # noqa: S311 (simulated addresses)
    shipped = Path(settings.GEO_SHIPPED_DIR)
    inputs = addresses(options.addresses, rng, [shipped / name for name in geo.SHIPPED_FILES])
    located = sum(bool(geo.locate(ip).city) for ip in inputs)
    print(
        f"{len(inputs)} addresses, {located / len(inputs):.0%} located to a city; "
        f"database: {settings.GEO_CITY_DATABASE or settings.GEO_SHIPPED_DIR}"
    )
    baseline, locate, facts = [], [], []
    for _ in range(options.rounds):
        baseline.append(per_call_ns(country_code, inputs))
        locate.append(per_call_ns(geo.locate, inputs))
        facts.append(per_call_ns(request_facts, inputs))
    print(f"{'round':>5} {'country_code':>13} {'geo.locate':>11} {'ratio':>6} {'facts':>8}")
    for index, (base, new, whole) in enumerate(zip(baseline, locate, facts, strict=True), 1):
        print(f"{index:>5} {base:>10.0f} ns {new:>8.0f} ns {new / base:>6.2f} {whole:>5.0f} ns")
    best_base, best_new, best_facts = min(baseline), min(locate), min(facts)
    print(
        f"best: country_code {best_base:.0f} ns, geo.locate {best_new:.0f} ns "
        f"(ratio {best_new / best_base:.2f}, +{best_new - best_base:.0f} ns per request); "
        f"RequestFacts.from_headers {best_facts:.0f} ns, of which the lookup "
        f"{best_new / best_facts:.0%}"
    )


if __name__ == "__main__":
    main()
