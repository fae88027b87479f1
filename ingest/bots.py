"""Bot detection by user agent: `classify_user_agent(ua)` says whether a user agent is a bot and
why, as a short machine-readable reason stored next to `is_bot` on every event.

Reasons: "" (a person), "list:<pattern>" (the first pattern of the bot list that matches, in the
list's order, as isbot's `findBotPattern` gives it), or "heuristic:<name>".

The list is isbot's (npm package `isbot`, omrilotan/isbot, Unlicense), vendored as
ingest/data/bots.json and refreshed by scripts/update_bot_list.py: about 200 patterns, generic
ones ("bot", "crawl", "spider", a user agent that is only `name/version`...) and named tools, kept
by a community and tuned against a large set of real browser user agents. Six of its patterns are
left out (UNUSED_PATTERNS): each flags real browsers and catches next to no bot the others miss.

Before the list:
- "heuristic:empty": no user agent at all.
- Mobile apps are people: Naboria's /collect serves apps too, and their HTTP stacks send their
  own user agents: `okhttp/4.12.0` alone (OkHttp's default, which isbot's `name/version` pattern
  flags), `Dalvik/2.1.0 (Linux; U; Android ...)`, `MyApp/3.2 CFNetwork/1494 Darwin/23.4`. Only
  what the app added (`MyApp/3.2`) is matched, and only by the patterns that name something
  (`URLTester/1 CFNetwork/...` is a bot, `Canary%20Mail/397 CFNetwork/...` is not).
- The device model in an Android browser's platform comment (`(Linux; Android 14; <model>
  Build/...)`) is not matched: makers name phones "Discovery", "XBot", "Cabot", "Newsday",
  "Google 2XL"..., and crawlers posing as Android phones name themselves outside the model.

After the list, conservative heuristics on shapes that browsers never have (the false-positive
budget is 0.5 % of real browsers, so each one was kept only if it flags next to none):
- "heuristic:automation": automation and rendering tools the list does not name (Puppeteer,
  wkhtmltopdf/wkhtmltoimage, Zombie.js, HtmlUnit, jsdom, SlimerJS, CasperJS), and QtWebKit's
  default desktop user agent with a bare application name where a browser's `Name/version` is
  (`(KHTML, like Gecko) imgsizer Safari/537.21`: scripts; it also flags rekonq, a KDE browser
  discontinued in 2014).
- "heuristic:ai-assistant": an AI assistant's token appended to a browser's user agent
  (`Perplexity-User/1.0`, `claude-web`...).
- "heuristic:service": a word naming what an automated service does (translate, screenshot,
  thumbnail, snapshot, fetch, debug, bookmark, unshorten, unfurl, SEO, uptime, health check,
  heartbeat), outside an Android browser's device model; or a search engine's bare name
  appended to a browser's user agent (`Safari/537.36 (BingLocalSearch)`; search apps carry a
  version: `YandexSearch/7.16`).
- "heuristic:crawler-comment": a `(compatible; Name/1.0; +...)` comment whose "+" entry is
  blank or not a URL (the list catches `+http`).
- "heuristic:injection": attack payloads (`<?`, `<script`, `${`, `() {`, `union select`, `../`).
- "heuristic:http-library": an HTTP client library or developer tool, by the product it starts
  with (curl, python-requests, Go-http-client, axios, Java, libwww-perl, Guzzle, reqwest, git...)
  or a token it adds (`CPython/`, `requests/`, `WindowsPowerShell/`, any `lib<name>/<digit>`
  such as `LibVLC/2.2.4`...); not OkHttp (apps).
- "heuristic:no-version": no digit at all (a monitor's `Name/Product/Oregon(aws)`).
- "heuristic:no-os": `Mozilla/4.0 (compatible; Name-1.0)`, a "compatible" comment naming one
  product and no operating system, which every browser of that form names.

Not bots: desktop Microsoft Office apps (`Microsoft Office/16.0 (Windows NT 10.0; Microsoft
Outlook 16.0...)`, `Mozilla/5.0 (Macintosh; Intel Mac OS X) Word/14.0.0`) and words inside
browser user agents ("CRONY-7021", "Cabot", "Banca Caboto"). Not tried: ua-parser's "Spider"
device family (it caught none of the bots missed here), and the absence of a browser token
(mobile apps' own user agents have none).

Measured by bench/bots.py (bench/RESULTS.md, "Bots", run 2) on corpora the list was not built
from: recall 97.6 % of Crawler-Detect's 3,702 crawler user agents (96.9 % on the half not used to
tune the exclusions and heuristics, short of 97 %; 98.3 % and 97.6 % without the Office and app
user agents that are people here), false positives 0.41 % of Matomo device-detector's 34,392
browser user agents (0.37 % held out); about 10 µs a call on a browser's user agent, 8 µs on a
bot's (the CrawlerDetect classifier it replaced: 780 µs and 135 µs).

One search (`_NAMES`, a prefix tree of the list's required literals and the heuristics' markers)
rules out both for most people's user agents, which keeps a call near 10 µs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parser  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class BotVerdict:
    is_bot: bool
    reason: str


HUMAN = BotVerdict(is_bot=False, reason="")

_LIST_DOCUMENT = json.loads((Path(__file__).parent / "data" / "bots.json").read_text())
LIST_VERSION: str = _LIST_DOCUMENT["version"]


def _required_literal(pattern: str) -> str:
    """The longest run of plain characters that every match of `pattern` contains ("" if none):
    a substring test on it skips most patterns for most user agents."""
    longest = run = ""
    for op, argument in sre_parser.parse(pattern):
        if op is sre_constants.LITERAL:
            run += chr(argument)
        else:
            longest, run = max(longest, run, key=len), ""
    return max(longest, run, key=len)


def _trie(words: list[str]) -> str:
    """One regular expression that finds any of `words`, as a prefix tree: Python's `re` tries
    the alternatives of a flat alternation one by one at every position, a tree only the few
    that share the next character."""
    root: dict[str, dict] = {}
    for word in words:
        node = root
        for character in word:
            node = node.setdefault(character, {})
        node[""] = {}

    def emit(node: dict[str, dict]) -> str:
        branches = [re.escape(char) + emit(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return emit(root)


# isbot patterns left out: each one flags real browsers and apps (Android models, feature
# phones, TV firmware, Facebook's in-app browser, Sogou's and Hisense's browsers) and catches
# next to no bot that another pattern does not, on the half of the corpora used to tune this.
UNUSED_PATTERNS = frozenset({r"\b\w+/1\.0;", r"^[^ ]{50,}$", r"\(\)", "sogou", "radar", "catch"})
# Patterns are lowercase and matched on the lowered user agent: the same as isbot's
# case-insensitive match, and `re`'s fast literal searches work only case-sensitively.
_LIST = tuple(
    (_required_literal(pattern), re.compile(pattern, re.ASCII), f"list:{pattern}")
    for pattern in _LIST_DOCUMENT["patterns"]
    if pattern not in UNUSED_PATTERNS
)
# Gates in front of the list: a user agent that passes none of them matches no pattern, so a
# person's user agent (most traffic) costs three searches instead of 200.
_ANCHORED = re.compile(
    "|".join(f"(?:{pattern.pattern})" for _, pattern, _ in _LIST if pattern.pattern[0] == "^"),
    re.ASCII,
)
_UNANCHORED = [(literal, pattern) for literal, pattern, _ in _LIST if pattern.pattern[0] != "^"]
_GATE_LITERALS = {literal for literal, _ in _UNANCHORED if len(literal) > 1}
_GATE = re.compile(_trie(sorted(_GATE_LITERALS)))
_UNGATED = tuple(pattern for literal, pattern in _UNANCHORED if len(literal) <= 1)
# The patterns that name something ("scrape", "download", "^email"...), as opposed to those on
# the shape of a user agent (only `name/version`, starting with a digit...).
_NAMING = tuple(check for check in _LIST if len(check[0]) > 1)

# The HTTP stacks of mobile apps; the `app_*` groups hold what the app itself added.
_APP_HTTP_STACK = re.compile(
    r"okhttp/[\d.]+"
    r"|dalvik/[\d.]+ \(linux; u; android [^)]*\)(?P<app_after>.*)"
    r"|(?P<app_before>[^()]*?) ?cfnetwork/[\d.]+ darwin/[\d.]+(?: \([^)]*\))?",
    re.ASCII,
)
# The maker's model name in an Android browser's platform comment, which is not matched.
_ANDROID_PREFIX = "mozilla/5.0 (linux; "
_ANDROID_MODEL = re.compile(
    r"mozilla/5\.0 \(linux; (?:u; )?android [\d.]+; (?:[a-z]{2}(?:[-_][a-z]{2})?; )?([^;)]+)",
    re.ASCII,
)
# Automation and rendering tools that isbot does not name (it names HeadlessChrome, PhantomJS,
# Selenium, Playwright, Lighthouse...).
_AUTOMATION_TOOLS = (
    "puppeteer",
    "wkhtmlto",
    "zombie.js",
    "htmlunit",
    "jsdom/",
    "slimerjs",
    "casperjs",
)
# HTTP client libraries and developer tools: by the product token they start with, or by one
# they add to another product's user agent. OkHttp is not one: Android apps use it.
_HTTP_LIBRARY_PRODUCT = re.compile(
    r"(?:curl|wget|libcurl|go-http-client|go-resty|node-fetch|axios|undici|apache-httpclient"
    r"|jakarta commons-httpclient|java|libwww-perl|lwp-\w+|ruby|faraday|typhoeus|httparty"
    r"|guzzlehttp|php|reqwest|ureq|isahc|python|python-\w+|aiohttp|httpx|httpie|scrapy"
    r"|mechanize|winhttp|postmanruntime|insomnia|gradle|apache-maven|twine|pip|npm|yarn|pnpm"
    r"|deno|bun|git|gitlab)\b",
    re.ASCII,
)
_HTTP_LIBRARY_TOKENS = (
    "cpython/",
    "requests/",
    "urllib/",
    "aiohttp/",
    "libcurl/",
    "go-http-client/",
    "windowspowershell/",
    "ms web services client protocol",
)
# A library's own product token (`LibVLC/2.2.4`, `libsoup/2.4`, `libwww/2.12`): players and
# tools fetching by themselves; no browser since the 1990s' NCSA Mosaic names its library.
_LIBRARY_TOKEN = re.compile(r"\blib[a-z]+/\d", re.ASCII)
# Words naming what an automated service does, which no browser or app says of itself: translation
# proxies, screenshot and thumbnail services, fetchers, page and link-preview debuggers,
# bookmarking and link-expanding services, SEO tools, uptime and health checks. Matched outside
# an Android browser's device model ("Seoul 5 Plus").
_SERVICE_WORDS = (
    "translat",
    "screenshot",
    "screen-shot",
    "thumbnail",
    "thumbshot",
    "webshot",
    "snapshot",
    "debug",
    "bookmark",
    "unshorten",
    "unfurl",
    "linkexpand",
    "link-expand",
    "uptime",
    "healthcheck",
    "health-check",
    "heartbeat",
)
# and two that are markers only as a whole word ("fetch", as in `Mikrotik/7.x Fetch`) or at a
# word's start ("SEO"): fetching and SEO tools.
_SERVICE_WORD_STARTS = re.compile(r"\b(?:fetch\b|seo)", re.ASCII)
# A search engine's fetcher appending its bare name to a browser's user agent: browsers' own
# search apps add theirs with a version (`YandexSearch/7.16`).
_APPENDED_SEARCH = re.compile(
    r"(?:safari|firefox|chrome)/[\d.]+ \(?[\w.-]*search[\w.-]*\)?$", re.ASCII
)
# AI assistants fetching a page for their user, by the token they append to a browser's user
# agent (alone, the list's `name/version` pattern catches them).
_AI_ASSISTANTS = (
    "chatgpt-user",
    "claude-web",
    "claude-user",
    "perplexity-user",
    "anthropic-ai",
    "cohere-ai",
    "mistralai-user",
    "meta-externalfetcher",
)
# A crawler's `(compatible; Name/1.0; +URL)` comment with the "+" entry blank or not a URL (the
# list catches `+http...`); no browser's comment has an entry starting with "+".
_PLUS_ENTRY = re.compile(r"\(compatible;[^()]*; \+", re.ASCII)
# QtWebKit's default user agent on a desktop, where the Qt application's bare name (a version
# only if it set one) stands instead of a browser's `Name/version`: screenshot and scraping
# scripts (`wkhtmltopdf`'s shape). QtWebKit browsers set a version (`QupZilla/1.8.6`); the
# exception is rekonq, a KDE browser discontinued in 2014.
_QTWEBKIT_APP = re.compile(
    r"mozilla/5\.0 \((?:x11|windows|macintosh)[^()]*\) applewebkit/[\d.]+\+? "
    r"\(khtml, like gecko\) [^ /()]+ safari/[\d.]+$",
    re.ASCII,
)
# Attack payloads (PHP, HTML, Log4Shell, Shellshock, SQL injection, path traversal): scanners.
_INJECTIONS = ("<?", "<script", "${", "() {", "union select", "union all select", "../")
_DIGIT = re.compile(r"\d")
# "compatible" naming one product and no operating system, which every browser of that form has.
_COMPATIBLE_WITHOUT_OS = re.compile(
    r"mozilla/\d\.\d \(compatible; ?(?!msie)[^;()]*;? ?\)$", re.ASCII
)
# Every plain marker above, found in one search of a prefix tree (a browser's user agent, which
# has none, costs one search instead of 40 substring tests); its reason by the marker found.
_MARKER_REASONS = (
    dict.fromkeys(_AUTOMATION_TOOLS, "heuristic:automation")
    | dict.fromkeys(_AI_ASSISTANTS, "heuristic:ai-assistant")
    | dict.fromkeys(_SERVICE_WORDS, "heuristic:service")
    | dict.fromkeys(_INJECTIONS, "heuristic:injection")
    | dict.fromkeys(_HTTP_LIBRARY_TOKENS, "heuristic:http-library")
)
_MARKER = re.compile(_trie(sorted(_MARKER_REASONS)), re.ASCII)
# The list's gate and the markers in one tree: most people's user agents have neither, and then
# one search rules both out.
_NAMES = re.compile(_trie(sorted(_GATE_LITERALS | _MARKER_REASONS.keys())), re.ASCII)


def _without_android_model(text: str) -> str:
    model = _ANDROID_MODEL.match(text) if text.startswith(_ANDROID_PREFIX) else None
    return text[: model.start(1)] + "device" + text[model.end(1) :] if model else text


def _heuristic_reason(text: str, named: str, names: bool = True) -> str:
    """`named` is `text` without an Android browser's device model, for the rules on names;
    `names` False when `_NAMES` found nothing in it."""
    marker = _MARKER.search(named) if names else None
    if marker:
        return _MARKER_REASONS[marker.group()]
    if _QTWEBKIT_APP.match(text):
        return "heuristic:automation"
    if (("fetch" in named or "seo" in named) and _SERVICE_WORD_STARTS.search(named)) or (
        "search" in text and _APPENDED_SEARCH.search(text)
    ):
        return "heuristic:service"
    if _PLUS_ENTRY.search(text):
        return "heuristic:crawler-comment"
    if _HTTP_LIBRARY_PRODUCT.match(text) or ("lib" in text and _LIBRARY_TOKEN.search(text)):
        return "heuristic:http-library"
    # Every browser and app carries a version number somewhere; some monitors carry none.
    if not _DIGIT.search(text):
        return "heuristic:no-version"
    if _COMPATIBLE_WITHOUT_OS.match(text):
        return "heuristic:no-os"
    return ""


def _list_reason(text: str, names: bool = True) -> str:
    """`names` False when `_NAMES` found nothing in `text`."""
    gated = names and _GATE.search(text)
    if not (gated or _ANCHORED.match(text) or any(p.search(text) for p in _UNGATED)):
        return ""
    # The first pattern in the list's order names the reason, as isbot's findBotPattern does.
    for literal, pattern, reason in _LIST:
        if literal in text and pattern.search(text):
            return reason
    return ""


def _app_reason(app: str) -> str:
    """The list's verdict on what an app added to its HTTP stack's user agent: only by the
    patterns that name something, as an app's own `Name/1.2` has the shape of a bot's."""
    for literal, pattern, reason in _NAMING:
        if literal in app and pattern.search(app):
            return reason
    return ""


def classify_user_agent(user_agent: str) -> BotVerdict:
    """Whether `user_agent` is a bot, and the reason (see the module docstring)."""
    text = user_agent.strip().lower()
    if not text:
        return BotVerdict(is_bot=True, reason="heuristic:empty")
    app_stack = _APP_HTTP_STACK.fullmatch(text)
    if app_stack:
        reason = _app_reason(app_stack.group("app_before") or app_stack.group("app_after") or "")
        return BotVerdict(is_bot=True, reason=reason) if reason else HUMAN
    named = _without_android_model(text)
    names = _NAMES.search(named) is not None
    reason = _list_reason(named, names) or _heuristic_reason(text, named, names)
    return BotVerdict(is_bot=True, reason=reason) if reason else HUMAN
