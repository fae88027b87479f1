"""Country of an IP address, offline, from the iptocc package (regional internet registry
allocation data shipped inside the wheel; IPv4 and IPv6; millions of lookups per second).
Private, loopback and malformed addresses have no country.

Registry data knows countries, not regions, and no package on the registries this product
installs from ships current region data, so ``region`` is empty for now (see README).

Entry point: locate(ip) -> (ISO 3166-1 alpha-2 country or "", region or "").
"""

from __future__ import annotations

from iptocc import country_code


def locate(ip: str) -> tuple[str, str]:
    return country_code(ip) or "", ""
