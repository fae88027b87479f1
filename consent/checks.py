"""System check consent.W001: the IAB vendor list in use is older than
TCF_VENDOR_LIST_MAX_AGE_DAYS while a banner uses TCF (manage.py check, runserver, migrate)."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Warning
from django.db import DatabaseError

from consent import vendor_list
from consent.models import ConsentBanner


def vendor_list_fresh(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    try:
        if not ConsentBanner.objects.filter(tcf_enabled=True).exists():
            return []
        warning = vendor_list.staleness_warning()
    except DatabaseError:
        # No database yet (before migrate): nothing uses TCF then.
        return []
    if warning is None:
        return []
    return [Warning(warning, id="consent.W001", hint="manage.py refresh_vendor_list")]
