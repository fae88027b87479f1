"""Fixtures of the browser tests: Chromium (the system's, see tests.conftest.CHROMIUM) driven
by Playwright, and the signed-in admin the dashboard tests use (its API client and its
browser contexts)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from tests.conftest import CHROMIUM


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield instance
        instance.close()


@pytest.fixture
def admin_user(transactional_db: None) -> Any:
    return get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")


@pytest.fixture
def api(admin_user: Any) -> Client:
    """The REST API as the signed-in admin (session authentication, like the page)."""
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def open_context(browser: Any, server: str, api: Client) -> Callable[..., Any]:
    """A browser context signed in as the admin, with the given viewport and timezone."""

    def make(width: int = 1280, height: int = 900, **options: Any) -> Any:
        context = browser.new_context(viewport={"width": width, "height": height}, **options)
        cookie = api.cookies[settings.SESSION_COOKIE_NAME]
        context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": server}])
        return context

    return make
