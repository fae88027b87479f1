"""Where a visitor's decision applies: the registrable domains ("eTLD+1", e.g. example.co.uk for
shop.example.co.uk) of a site's allowed hosts, so the banner stores one decision in a cookie
that every subdomain of that domain reads.

The Public Suffix List comes from tldextract's bundled snapshot (no network fetch, no cache
written), with the private section included: browsers refuse a cookie for a private suffix
such as github.io, so a site on foo.github.io keeps its decision to its own host.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

import tldextract


@cache
def _extract() -> tldextract.TLDExtract:
    return tldextract.TLDExtract(
        suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True
    )


def registrable_domain(host: str) -> str:
    """example.com for shop.example.com (or *.example.com); "" for an IP address, a single
    label such as localhost, or a host that is a public suffix itself."""
    host = host.strip().lower().removeprefix("*.").split(":", 1)[0]
    return _extract()(host).top_domain_under_public_suffix


def registrable_domains(hosts: Iterable[str]) -> list[str]:
    """The distinct registrable domains of ``hosts``, in their first order."""
    found = (registrable_domain(host) for host in hosts)
    return list(dict.fromkeys(domain for domain in found if domain))


def link_domains(hosts: Iterable[str]) -> list[str]:
    """The domains a visitor crosses between the site's allowed hosts without sharing cookies
    (docs/cross-domain.md): the registrable domain of each, or the host itself for an IP
    address or a single label such as localhost. Empty when there is only one: subdomains of
    one registrable domain share the decision cookie, and need no link decoration."""
    found = (
        registrable_domain(host) or host.strip().lower().removeprefix("*.").split(":", 1)[0]
        for host in hosts
    )
    domains = list(dict.fromkeys(domain for domain in found if domain))
    return domains if len(domains) > 1 else []
