"""IP geolocation (ingest/geo.py): the shipped DB-IP City Lite files as they are installed, and
an operator's MaxMind-layout file (GEO_CITY_DATABASE), written here with mmdb-writer as a
GeoLite2-City or a GeoIP2-City database would be laid out."""

from __future__ import annotations

from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from ingest import geo
from ingest.geo import DB_IP, MAXMIND, NOWHERE, Location
from tests.geo_samples import samples


def test_locates_addresses_as_the_shipped_database_says():
    found = samples()
    for ip, location in (found.first, found.same_region, found.other_region, found.ipv6):
        assert geo.locate(ip) == location
        assert all((location.country, location.region, location.city))
    assert found.first[1].region == found.same_region[1].region
    assert found.first[1].city != found.same_region[1].city
    assert found.other_region[1].region != found.first[1].region


def test_an_ipv4_client_on_a_dual_stack_socket_is_located_as_ipv4():
    ip, location = samples().first
    assert geo.locate(f"::ffff:{ip}") == location
    assert geo.locate(f"::FFFF:{ip}") == location


@pytest.mark.parametrize(
    "ip", ["127.0.0.1", "10.1.2.3", "192.168.0.1", "::1", "", "not an ip", "[::1]:80"]
)
def test_private_loopback_and_malformed_addresses_have_no_location(ip):
    assert geo.locate(ip) == NOWHERE


def test_the_shipped_database_asks_for_db_ip_attribution():
    assert geo.attribution() == DB_IP
    assert DB_IP.url == "https://db-ip.com"


def _maxmind_file(path: Path, database_type: str) -> str:
    writer = MMDBWriter(ip_version=6, database_type=database_type, ipv4_compatible=True)
    writer.insert_network(
        IPSet(["203.0.113.0/24"]),
        {
            "country": {"iso_code": "FR", "names": {"en": "France"}},
            "subdivisions": [{"iso_code": "IDF", "names": {"en": "Île-de-France"}}],
            "city": {"names": {"en": "Paris", "fr": "Paris"}},
        },
    )
    writer.insert_network(IPSet(["2001:db8::/32"]), {"country": {"iso_code": "DE"}})
    target = path / f"{database_type}.mmdb"
    writer.to_db_file(str(target))
    return str(target)


def test_an_operator_file_in_maxmind_layout_overrides_the_shipped_one(tmp_path, settings):
    settings.GEO_CITY_DATABASE = _maxmind_file(tmp_path, "GeoLite2-City")
    assert geo.locate("203.0.113.9") == Location("FR", "Île-de-France", "Paris")
    assert geo.locate("::ffff:203.0.113.9") == Location("FR", "Île-de-France", "Paris")
    # A record without subdivision or city: the country alone.
    assert geo.locate("2001:db8::1") == Location("DE")
    assert geo.attribution() == MAXMIND
    # Not in the operator's file: the country from registry data, no region or city.
    ip = samples().first[0]
    assert geo.locate(ip).region == ""
    assert geo.locate(ip).city == ""


def test_a_commercial_maxmind_file_asks_for_no_attribution(tmp_path, settings):
    settings.GEO_CITY_DATABASE = _maxmind_file(tmp_path, "GeoIP2-City")
    assert geo.locate("203.0.113.9").city == "Paris"
    assert geo.attribution() is None


def test_without_the_shipped_files_only_the_country_is_known(tmp_path, settings, caplog):
    settings.GEO_SHIPPED_DIR = tmp_path / "not-installed"
    assert geo.locate("8.8.8.8") == Location("US")  # Google's, by its registry allocation
    assert geo.attribution() is None
    assert "make geodata" in caplog.text
