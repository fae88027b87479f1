"""Addresses with a known location for tests, picked from the shipped geolocation database
itself (geodata/, ``make geodata``) rather than guessed: whatever the next monthly DB-IP
release says of an address, the tests expect what the installed files say."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import maxminddb
from django.conf import settings

from ingest.geo import SHIPPED_FILES, Location


@dataclass(frozen=True)
class Samples:
    first: tuple[str, Location]  # a city of a region
    same_region: tuple[str, Location]  # another city of the same region
    other_region: tuple[str, Location]  # a city of another region of the same country
    ipv6: tuple[str, Location]


def _address(network: Any) -> str:
    return str(network[1] if network.num_addresses > 2 else network[0])


def _location(record: Any) -> Location:
    return Location(record["country_code"], record["state1"], record["city"])


@cache
def samples() -> Samples:
    ipv4_file, ipv6_file = (Path(settings.GEO_SHIPPED_DIR) / name for name in SHIPPED_FILES)
    found: dict[tuple[str, str], dict[str, str]] = {}
    with maxminddb.open_database(ipv4_file) as reader:
        for network, record in reader:
            if not isinstance(record, dict) or not all(
                record.get(key) for key in ("country_code", "state1", "city")
            ):
                continue
            place = _location(record)
            found.setdefault((place.country, place.region), {}).setdefault(
                place.city, _address(network)
            )
            cities = found[place.country, place.region]
            others = [key for key in found if key[0] == place.country and key[1] != place.region]
            if len(cities) >= 2 and others:
                first, second = list(cities.items())[:2]
                other_city, other_ip = next(iter(found[others[0]].items()))
                return Samples(
                    first=(first[1], Location(place.country, place.region, first[0])),
                    same_region=(second[1], Location(place.country, place.region, second[0])),
                    other_region=(other_ip, Location(place.country, others[0][1], other_city)),
                    ipv6=_ipv6_sample(ipv6_file),
                )
    raise AssertionError("the shipped database has no country with two regions and two cities")


def _ipv6_sample(path: Path) -> tuple[str, Location]:
    with maxminddb.open_database(path) as reader:
        for network, record in reader:
            if isinstance(record, dict) and record.get("city") and record.get("state1"):
                assert isinstance(network, ipaddress.IPv6Network)
                return _address(network), _location(record)
    raise AssertionError("the shipped IPv6 database has no city")
