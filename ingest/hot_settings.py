"""The settings the tracking endpoints read on every request, as plain attributes of ``HOT``.

``django.conf.settings`` is a lazy proxy: every attribute read runs Python code
(``LazyObject.__getattribute__``), and the few a request makes added up on the hot path
(bench/RESULTS.md run 18). The values are copied on first use and again whenever one of them
changes (Django's ``setting_changed``: ``override_settings`` in tests; a running process's
settings never change otherwise).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

NAMES = (
    "GEO_CITY_DATABASE",
    "GEO_SHIPPED_DIR",
    "GEO_TEST_COUNTRY_HEADER",
    "INGEST_ACK_TIMEOUT_SECONDS",
    "INGEST_TRUSTED_PROXIES",
)


class HotSettings:
    __slots__ = NAMES

    GEO_CITY_DATABASE: str
    GEO_SHIPPED_DIR: Path
    GEO_TEST_COUNTRY_HEADER: str
    INGEST_ACK_TIMEOUT_SECONDS: float
    INGEST_TRUSTED_PROXIES: int

    def __getattr__(self, name: str) -> Any:
        # Only for a value not copied yet (the first read, or one after a change).
        if name not in NAMES:
            raise AttributeError(name)
        self.copy()
        return getattr(self, name)

    def copy(self) -> None:
        for name in NAMES:
            setattr(self, name, getattr(settings, name))


HOT = HotSettings()


def _setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in NAMES:
        HOT.copy()


setting_changed.connect(_setting_changed)
