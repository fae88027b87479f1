"""What each tag template's fields may hold: the rules a tag is checked against on every save
(``Tag.clean``, so in the admin and in ``tag_create``), documented in docs/tags.md.

A tag runs in the visitor's browser with the rights of the site's own pages, so this cannot
make a custom script safe the way ads.sanitising makes a creative safe: a creative is markup
Naboria shows in a sandbox, a custom script is code the site owner chooses to run. What the
rules do ensure is that every tag is what its template says and runs only where the loader
puts it:

- **Ids** of the vendor templates have the vendor's format (GA4 ``G-XXXXXXXXXX``, Google Ads
  ``AW-123456789``, Meta Pixel 15-16 digits, LinkedIn partner id 4-10 digits), so nothing but
  an id reaches the vendor's URL.
- **URLs** (custom script ``src``, iframe, pixel) are absolute ``https://`` URLs without user
  name or password, or paths on the site itself (``/js/chat.js``, not ``//host/x``, which is
  another host); no ``http:`` (mixed content), ``javascript:``, ``data:`` or ``blob:``, no
  white space or control characters, at most 2,000 characters.
- **Custom script code** is JavaScript, not a pasted HTML snippet: no ``<script>``,
  ``</script>``, ``<iframe>``, ``<img>``, ``<noscript>``, ``<style>``, ``<link>`` tags and no
  ``<!--`` (paste what is between ``<script>`` and ``</script>``; a vendor's ``<noscript>``
  image is a pixel tag of its own); no ``document.write`` (run after the page has loaded it
  would replace the whole page); at most 20,000 characters. Its syntax is not checked: a
  syntax error stops only that tag.
- **Cookie names** a tag's withdrawal deletes are cookie-name characters, optionally ending in
  ``*`` (a prefix).
- **Container** of an iframe is an element id (``store-map``).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

TRACKING_ID_FORMATS = {
    "ga4": (re.compile(r"G-[A-Z0-9]{4,12}"), "a GA4 measurement id, e.g. G-2X7ABC9DEF"),
    "google_ads": (re.compile(r"AW-\d{6,12}"), "a Google Ads tag id, e.g. AW-123456789"),
    "meta_pixel": (re.compile(r"\d{15,16}"), "a Meta Pixel id: 15 or 16 digits"),
    "linkedin": (re.compile(r"\d{4,10}"), "a LinkedIn Insight partner id: 4 to 10 digits"),
}
URL_MAX_LENGTH = 2000
CODE_MAX_LENGTH = 20_000
_FORBIDDEN_CHARACTERS = re.compile(r"[\s\x00-\x1f\x7f\\]")
_MARKUP = re.compile(r"<\s*/?\s*(?:script|iframe|img|noscript|style|link)\b|<!--", re.IGNORECASE)
_DOCUMENT_WRITE = re.compile(r"\bdocument\s*\.\s*write(?:ln)?\b|\[\s*['\"`]write", re.IGNORECASE)
_COOKIE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}\*?")
_ELEMENT_ID = re.compile(r"[A-Za-z][\w-]{0,99}")


def tracking_id_error(*, template: str, value: str) -> str | None:
    pattern, description = TRACKING_ID_FORMATS[template]
    return None if pattern.fullmatch(value) else f"{value!r} is not {description}."


def url_error(value: str) -> str | None:
    """Why ``value`` may not be a tag's URL, or None."""
    if len(value) > URL_MAX_LENGTH:
        return f"at most {URL_MAX_LENGTH} characters"
    if _FORBIDDEN_CHARACTERS.search(value):
        return "no white space, control characters or backslashes"
    if value.startswith("/") and not value.startswith("//"):
        return None
    try:
        parts = urlsplit(value)
        port = parts.port  # raises on a port that is no number
    except ValueError:
        return "not a valid URL"
    if parts.scheme != "https" or not parts.hostname or port == 0:
        return "an https:// URL, or a path on the site such as /js/widget.js"
    if parts.username is not None or parts.password is not None:
        return "no user name or password in the URL"
    return None


def code_error(value: str) -> str | None:
    """Why ``value`` may not be a custom script's code, or None."""
    if len(value) > CODE_MAX_LENGTH:
        return f"at most {CODE_MAX_LENGTH:,} characters"
    if _MARKUP.search(value):
        return (
            "JavaScript only, not HTML: paste what is between <script> and </script> "
            "(an image in <noscript> is a pixel tag of its own)"
        )
    if _DOCUMENT_WRITE.search(value):
        return "document.write would replace the whole page once it has loaded: use the DOM"
    return None


def cookie_names_error(value: object) -> str | None:
    if not isinstance(value, list) or not all(
        isinstance(name, str) and _COOKIE_NAME.fullmatch(name) for name in value
    ):
        return 'a list of cookie names, a trailing * for a prefix, e.g. ["_chat_id", "_chat_*"]'
    return None


def element_id_error(value: str) -> str | None:
    if _ELEMENT_ID.fullmatch(value):
        return None
    return "the id of an element of the page (letters, digits, - and _), without #"
