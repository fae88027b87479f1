"""Which URLs a scan may visit: only http(s) URLs on the site's own allowed domains, so a
marketer-edited field (the scan configuration's URLs, a redirect of the site's server) cannot
point the scanner's browser at another host. Pure functions of the URL and the domains."""

from __future__ import annotations

from urllib.parse import urlsplit

from sites.models import host_allowed

SCHEMES = frozenset({"http", "https"})


def url_refusal(*, url: str, allowed_domains: list[str] | tuple[str, ...]) -> str | None:
    """Why the scanner must not visit ``url`` (a sentence), or None when it may."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return f"{url!r} is not a URL"
    if parts.scheme not in SCHEMES:
        return f"{url!r}: only http and https URLs are scanned"
    if parts.username is not None or parts.password is not None:
        return f"{url!r}: a URL with a user name or password is not scanned"
    host = parts.hostname or ""
    if not host:
        return f"{url!r} names no host"
    if not host_allowed(host=host, port=port, domains=allowed_domains):
        return f"{url!r} is not on the site's allowed domains ({', '.join(allowed_domains)})"
    return None


def home_urls(*, allowed_domains: list[str] | tuple[str, ...], scheme: str) -> list[str]:
    """The home page of each allowed domain that names one host (not ``*.example.com``)."""
    return [f"{scheme}://{domain}/" for domain in allowed_domains if not domain.startswith("*.")]


def is_first_party(
    *, host: str, page_host: str, allowed_domains: list[str] | tuple[str, ...]
) -> bool:
    """A host (or a cookie's domain) is first party when it is one of the site's allowed
    domains, the page's host, or a parent or subdomain of the page's host."""
    host = host.lower().lstrip(".")
    page_host = page_host.lower()
    return (
        host_allowed(host=host, port=None, domains=allowed_domains)
        or host == page_host
        or page_host.endswith("." + host)
        or host.endswith("." + page_host)
    )
