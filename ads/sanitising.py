"""The creative sanitiser: what the HTML of an ad may contain, applied on every write of an ad.

An HTML banner is shown to visitors in a sandboxed frame without scripts, before they have
granted ads consent. So its HTML may hold markup, text, images and inline styles, and nothing
that runs or fetches anything on its own:

- **Tags** (``HTML_TAGS``): text and layout markup, links and images. Scripts and style sheets
  are removed with their content; forms, frames, media, ``<svg>``, ``<link>``, ``<base>`` and
  every other tag are removed, their text kept.
- **Attributes** (``HTML_ATTRIBUTES``): ``style``, ``class`` and ``title`` on every tag,
  ``href`` on links, ``src``, ``alt``, ``width``, ``height`` on images. No event handlers, no
  ``srcset`` or ``background``. URLs must be absolute ``http(s)``: relative and
  scheme-relative ones (``//host/x``, resolved against the publisher's page) are removed.
  Links get ``rel="noopener noreferrer"``.
- **Inline CSS**: only the properties of ``CSS_PROPERTIES`` (colours, fonts, text, box model,
  display and flex basics, borders, ``background-color``); none that takes an image or a
  resource (``background``, ``background-image``, ``border-image``, ``list-style-image``,
  ``content``, ``cursor``, ``mask``, ``filter``, ``clip-path``...). A declaration is removed
  when its value, CSS escapes decoded and comments removed, calls a function other than those
  of ``CSS_FUNCTIONS`` (colours and arithmetic: no ``url()``, ``image-set()``, ``image()``,
  ``cross-fade()``, ``element()``, ``expression()``, ``var()``, ``env()``, ``attr()``) or
  holds ``@import``: so ``u\\72l(...)`` goes the way of ``url(...)``. A value that nests
  calls (``calc(1px + min(2px, 3px))``) is removed too (nh3 0.3.8 truncates them).

The images a creative still names (``<img src>``, and the ``image_url`` of image and native
ads) are fetched by Naboria, never by the visitor's browser: the renderer rewrites them to
first-party URLs (ads.assets).

``ad_html_sanitise`` is connected to ``pre_save`` of ``ads.Ad`` (ads.apps): the admin, code,
the shell and ``loaddata`` all store sanitised HTML. ``QuerySet.update()`` and
``bulk_create()`` send no signal: call ``sanitise_creative_html`` before them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import nh3

if TYPE_CHECKING:
    from ads.models import Ad

HTML_TAGS = {
    "a",
    "b",
    "br",
    "div",
    "em",
    "h1",
    "h2",
    "h3",
    "i",
    "img",
    "p",
    "small",
    "span",
    "strong",
    "table",
    "tbody",
    "td",
    "th",
    "tr",
    "u",
}
HTML_ATTRIBUTES = {
    "*": {"style", "class", "title"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
}
URL_SCHEMES = {"https", "http"}

_SIDES = ("top", "right", "bottom", "left")
CSS_PROPERTIES = {
    # colours
    "color",
    "background-color",
    "opacity",
    # fonts and text
    "font",
    "font-family",
    "font-size",
    "font-style",
    "font-variant",
    "font-weight",
    "letter-spacing",
    "line-height",
    "text-align",
    "text-decoration",
    "text-decoration-color",
    "text-decoration-line",
    "text-decoration-style",
    "text-indent",
    "text-shadow",
    "text-transform",
    "vertical-align",
    "white-space",
    "word-break",
    "word-spacing",
    "overflow-wrap",
    # box model
    "box-sizing",
    "box-shadow",
    "width",
    "height",
    "min-width",
    "min-height",
    "max-width",
    "max-height",
    "margin",
    "padding",
    *(f"margin-{side}" for side in _SIDES),
    *(f"padding-{side}" for side in _SIDES),
    "overflow",
    "overflow-x",
    "overflow-y",
    # display and flex
    "display",
    "flex",
    "flex-basis",
    "flex-direction",
    "flex-flow",
    "flex-grow",
    "flex-shrink",
    "flex-wrap",
    "order",
    "justify-content",
    "align-content",
    "align-items",
    "align-self",
    "gap",
    "row-gap",
    "column-gap",
    # borders (``border-image`` is not one of them: it takes an image)
    "border",
    "border-color",
    "border-style",
    "border-width",
    "border-radius",
    "border-collapse",
    "border-spacing",
    *(f"border-{side}" for side in _SIDES),
    *(f"border-{side}-{part}" for side in _SIDES for part in ("color", "style", "width")),
}
# The CSS functions a value may call: colours and arithmetic, none of which can name a resource.
CSS_FUNCTIONS = {
    "rgb",
    "rgba",
    "hsl",
    "hsla",
    "hwb",
    "lab",
    "lch",
    "oklab",
    "oklch",
    "calc",
    "min",
    "max",
    "clamp",
}

# A CSS escape: a backslash and 1-6 hex digits with one optional white space after them, or a
# backslash and any other character (which stands for itself; a newline for nothing).
_CSS_ESCAPE = re.compile(r"\\(?:([0-9a-fA-F]{1,6})(?:\r\n|[ \t\r\n\f])?|(.)|$)", re.DOTALL)
# The pieces of CSS that matter to read a ``style`` attribute: strings (closed or not),
# comments, escapes, parentheses, semicolons, and runs of anything else. Together they are the
# whole attribute; a comment is only one outside a string, as for a browser.
_CSS_PIECE = re.compile(
    r""""(?:\\.|[^"\\])*"?|'(?:\\.|[^'\\])*'?|/\*.*?(?:\*/|$)|\\.?|[();]|[^"'/\\();]+|/""",
    re.DOTALL,
)
# A name followed by "(": in CSS a function call only without the spaces, which are allowed
# here so that anything a browser could read as a call is checked.
_CSS_CALL = re.compile(r"(-{0,2}[^\W\d][\w-]*)\s*\(")
_LARGEST_CODE_POINT = 0x10FFFF


def _unescaped(match: re.Match[str]) -> str:
    digits, character = match.groups()
    if digits is None:
        return "" if character in (None, "\n", "\r", "\f") else character
    code = int(digits, 16)
    is_surrogate = 0xD800 <= code <= 0xDFFF
    return "\ufffd" if code == 0 or is_surrogate or code > _LARGEST_CODE_POINT else chr(code)


def css_value_is_safe(value: str) -> bool:
    """Whether a CSS value names no resource: it calls only ``CSS_FUNCTIONS`` and holds no
    ``@import``, read as a browser reads it: comments dropped, then escapes decoded (so an
    escaped ``/*`` is no comment). Strings are read too, and a comment that splits a name is
    dropped (``u/**/rl(`` is refused): nothing legitimate is written that way."""
    uncommented = "".join(
        piece for piece in _CSS_PIECE.findall(value) if not piece.startswith("/*")
    )
    plain = _CSS_ESCAPE.sub(_unescaped, uncommented).lower()
    if "@import" in plain:
        return False
    return all(name in CSS_FUNCTIONS for name in _CSS_CALL.findall(plain))


def _declarations(style: str) -> Iterator[tuple[str, int]]:
    """The declarations of a ``style`` attribute, split at the semicolons that are not in a
    string, a comment or parentheses, nor escaped; each with how deep its parentheses nest."""
    current: list[str] = []
    depth = deepest = 0
    for piece in _CSS_PIECE.findall(style):
        if piece == ";" and depth == 0:
            yield "".join(current), deepest
            current, deepest = [], 0
            continue
        if piece == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif piece == ")":
            depth = max(depth - 1, 0)
        current.append(piece)
    yield "".join(current), deepest


def _is_allowed(declaration: str) -> bool:
    """Whether the declaration sets a property of CSS_PROPERTIES to something (nh3 removes the
    others too: this keeps it from leaving an empty ``style`` behind)."""
    name, colon, value = declaration.partition(":")
    plain = _CSS_ESCAPE.sub(_unescaped, name).strip().lower()
    return bool(colon and value.strip()) and plain in CSS_PROPERTIES


def _safe_style(style: str) -> str | None:
    """The declarations of ``style`` whose values name no resource; None when none is left.

    A value that nests calls (``calc(1px + min(2px, 3px))``) is removed as well: nh3 0.3.8
    writes it back truncated (``calc(1px + min()``), which is invalid CSS and would change at
    every save."""
    kept = ";".join(
        declaration.strip()
        for declaration, deepest in _declarations(style)
        if deepest <= 1 and _is_allowed(declaration) and css_value_is_safe(declaration)
    )
    # Whatever the split, what is kept is checked as a whole too: a value that escaped the
    # split (an unbalanced quote, say) drops the whole attribute rather than pass.
    return kept if kept and css_value_is_safe(kept) else None


def _cleaner(image_source: Callable[[str], str | None] | None) -> nh3.Cleaner:
    def attribute_filter(tag: str, attribute: str, value: str) -> str | None:
        if attribute == "style":
            return _safe_style(value)
        if image_source is not None and tag == "img" and attribute == "src":
            return image_source(value)
        return value

    return nh3.Cleaner(
        tags=HTML_TAGS,
        attributes=HTML_ATTRIBUTES,
        attribute_filter=attribute_filter,
        url_schemes=URL_SCHEMES,
        url_relative="deny",
        filter_style_properties=CSS_PROPERTIES,
        link_rel="noopener noreferrer",
    )


# Made once: building a cleaner costs more than cleaning a banner.
_SANITISER = _cleaner(None)


def sanitise_creative_html(
    html: str, *, image_source: Callable[[str], str | None] | None = None
) -> str:
    """``html`` with only what a creative may contain (the module's docstring says what).
    ``image_source``, a function of an ``<img src>`` returning its replacement (or None to
    remove it), rewrites the images (ads.assets); it must return absolute http(s) URLs, as
    what it returns is not checked again."""
    return (_SANITISER if image_source is None else _cleaner(image_source)).clean(html)


def ad_html_sanitise(sender: type[Ad], instance: Ad, **_: Any) -> None:
    """``pre_save`` of ``ads.Ad``: whoever saves an ad stores sanitised HTML (an ad of any kind:
    the field is delivered with every kind)."""
    instance.html = sanitise_creative_html(instance.html)
