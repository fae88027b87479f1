"""The IAB TCF Global Vendor List (GVL v3) the banners use: the newest one stored by
``manage.py refresh_vendor_list`` (consent.services.vendor_list_refresh), else the copy shipped
in consent/data/.

Used by the banner admin (which vendor ids exist), the tracker config (each chosen vendor's
declarations, retention, storage and links, and the IAB's names and descriptions of the purposes
and features they use) and the staleness warning (system check consent.W001 and the admin).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from consent.gvl import GlobalVendorList

SHIPPED_VENDOR_LIST_PATH = Path(__file__).with_name("data") / "tcf-vendor-list.json"
# Another process's refresh reaches this one within this time.
CURRENT_CHECK_SECONDS = 60.0
_current: tuple[float, int | None] = (0.0, None)


@cache
def _shipped() -> dict[str, Any]:
    return json.loads(SHIPPED_VENDOR_LIST_PATH.read_text())


@cache
def _stored(list_id: int) -> dict[str, Any]:
    data: dict[str, Any] = GlobalVendorList.objects.values_list("data", flat=True).get(id=list_id)
    return data


def forget_current() -> None:
    """Look for the newest stored list at the next read (after a refresh in this process)."""
    global _current
    _current = (0.0, None)


def _vendor_list() -> dict[str, Any]:
    global _current
    checked_at, list_id = _current
    if time.monotonic() - checked_at > CURRENT_CHECK_SECONDS:
        list_id = GlobalVendorList.objects.order_by("-version").values_list("id", flat=True).first()
        _current = (time.monotonic(), list_id)
    if list_id is None:
        return _shipped()
    try:
        return _stored(list_id)
    except GlobalVendorList.DoesNotExist:
        # Deleted since (by hand): look for the newest again.
        forget_current()
        return _vendor_list()


def vendor_list_version() -> int:
    return int(_vendor_list()["vendorListVersion"])


def tcf_policy_version() -> int:
    return int(_vendor_list()["tcfPolicyVersion"])


def last_updated() -> datetime:
    parsed = parse_datetime(_vendor_list()["lastUpdated"])
    if parsed is None:
        raise ValueError("the vendor list has no valid lastUpdated")
    return parsed


def staleness_warning() -> str | None:
    """A sentence for the admin and the system check when the list is older than allowed."""
    age = timezone.now() - last_updated()
    limit = timedelta(days=settings.TCF_VENDOR_LIST_MAX_AGE_DAYS)
    if age <= limit:
        return None
    return (
        f"The IAB vendor list in use (version {vendor_list_version()}) was published "
        f"{age.days} days ago, more than {limit.days}: TC strings may name vendors' old "
        "declarations. Run `manage.py refresh_vendor_list`."
    )


def unknown_vendor_ids(ids: list[int]) -> list[int]:
    vendors = _vendor_list()["vendors"]
    return [vendor_id for vendor_id in ids if str(vendor_id) not in vendors]


def _url(vendor: dict[str, Any], language: str, field: str) -> str:
    """The vendor's URL of that kind in the banner's language, else English, else any."""
    urls = sorted(
        vendor.get("urls") or [],
        key=lambda url: (url.get("langId") != language, url.get("langId") != "en"),
    )
    return next((url[field] for url in urls if url.get(field)), "")


def vendors_for_banner(ids: list[int], language: str = "en") -> list[dict[str, Any]]:
    """What the banner shows and signals of each vendor, from its GVL v3 entry."""
    vendors = _vendor_list()["vendors"]
    chosen = [vendors[str(i)] for i in sorted(set(ids)) if str(i) in vendors]
    return [
        {
            "id": vendor["id"],
            "name": vendor["name"],
            "purposes": vendor["purposes"],
            "legIntPurposes": vendor["legIntPurposes"],
            "flexiblePurposes": vendor.get("flexiblePurposes", []),
            "specialPurposes": vendor["specialPurposes"],
            "features": vendor.get("features", []),
            "specialFeatures": vendor["specialFeatures"],
            "data": vendor.get("dataDeclaration", []),
            "retention": (vendor.get("dataRetention") or {}).get("stdRetention"),
            "usesCookies": vendor.get("usesCookies", False),
            "cookieMaxAgeSeconds": vendor.get("cookieMaxAgeSeconds"),
            "cookieRefresh": vendor.get("cookieRefresh", False),
            "usesNonCookieAccess": vendor.get("usesNonCookieAccess", False),
            "storageUrl": vendor.get("deviceStorageDisclosureUrl", ""),
            "privacy": _url(vendor, language, "privacy"),
            "legIntClaim": _url(vendor, language, "legIntClaim")
            if vendor["legIntPurposes"]
            else "",
        }
        for vendor in chosen
    ]


def standard_names(vendors: list[dict[str, Any]], purposes: list[int]) -> dict[str, Any]:
    """The IAB's names and descriptions ([name, description]; data categories too) of every
    purpose, special purpose, feature, special feature and data category the vendors (or the
    site's own purposes) use, keyed by id."""
    gvl = _vendor_list()
    used = {
        "purposes": {*purposes},
        "specialPurposes": set(),
        "features": set(),
        "specialFeatures": set(),
        "dataCategories": set(),
    }
    for vendor in vendors:
        used["purposes"] |= {*vendor["purposes"], *vendor["legIntPurposes"]}
        used["specialPurposes"] |= set(vendor["specialPurposes"])
        used["features"] |= set(vendor["features"])
        used["specialFeatures"] |= set(vendor["specialFeatures"])
        used["dataCategories"] |= set(vendor["data"])
    return {
        kind: {
            str(i): [
                gvl[kind][str(i)]["name"].strip(),
                gvl[kind][str(i)].get("description", "").strip(),
            ]
            for i in sorted(ids)
            if str(i) in gvl.get(kind, {})
        }
        for kind, ids in used.items()
    }
