"""The IAB TCF Global Vendor List (GVL v3) the banners use: the newest one stored by
``vendor_list_refresh`` (``manage.py refresh_vendor_list`` and the daily job), else the copy
shipped in consent/data/.

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

import urllib3
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


VENDOR_LIST_FETCH_TIMEOUT_SECONDS = 30.0
_VENDOR_LIST_SECTIONS = ("purposes", "specialPurposes", "features", "specialFeatures", "vendors")


class VendorListInvalid(ValueError):
    """The source is not a GVL v3 vendor list (or cannot be read)."""


def _vendor_list_read(source: str) -> dict[str, Any]:
    try:
        if source.startswith(("http://", "https://")):
            answer = urllib3.request(
                "GET", source, timeout=VENDOR_LIST_FETCH_TIMEOUT_SECONDS, retries=2
            )
            if answer.status != 200:
                raise VendorListInvalid(f"{source} answered {answer.status}")
            raw = answer.data
        else:
            raw = Path(source).read_bytes()
        data = json.loads(raw)
    except (OSError, urllib3.exceptions.HTTPError, ValueError) as error:
        if isinstance(error, VendorListInvalid):
            raise
        raise VendorListInvalid(f"cannot read a vendor list from {source}: {error}") from None
    if not isinstance(data, dict):
        raise VendorListInvalid("not a JSON object")
    return data


def _vendor_list_checked(data: dict[str, Any]) -> datetime:
    """The list's lastUpdated, once its shape is that of a GVL v3 (what the banner reads)."""
    if data.get("gvlSpecificationVersion") != 3:
        raise VendorListInvalid("not a GVL v3 list (gvlSpecificationVersion must be 3)")
    for field in ("vendorListVersion", "tcfPolicyVersion"):
        if not isinstance(data.get(field), int) or data[field] < 1:
            raise VendorListInvalid(f"{field} must be a positive integer")
    if data["tcfPolicyVersion"] < 4:
        raise VendorListInvalid("TCF 2.2 needs policy version 4 or later")
    updated = parse_datetime(str(data.get("lastUpdated", "")))
    if updated is None:
        raise VendorListInvalid("lastUpdated must be a date and time")
    if not all(isinstance(data.get(section), dict) for section in _VENDOR_LIST_SECTIONS):
        raise VendorListInvalid(f"{', '.join(_VENDOR_LIST_SECTIONS)} must be objects")
    for key, vendor in data["vendors"].items():
        if not (
            isinstance(vendor, dict)
            and str(vendor.get("id")) == key
            and isinstance(vendor.get("name"), str)
            and all(
                isinstance(vendor.get(field), list)
                for field in ("purposes", "legIntPurposes", "specialPurposes", "specialFeatures")
            )
        ):
            raise VendorListInvalid(f"vendor {key} lacks its id, name or declarations")
    return updated


def vendor_list_refresh(*, source: str = "") -> tuple[GlobalVendorList, bool]:
    """Fetch the vendor list from a URL (default settings.TCF_VENDOR_LIST_URL, the IAB's,
    republished every week) or read it from a file, and store it when it is newer than the
    stored one. Returns the list now in use and whether it is new."""
    source = source or settings.TCF_VENDOR_LIST_URL
    data = _vendor_list_read(source)
    updated = _vendor_list_checked(data)
    version = data["vendorListVersion"]
    newest = GlobalVendorList.objects.order_by("-version").first()
    if newest is not None and newest.version >= version:
        newest.fetched_at = timezone.now()
        newest.save(update_fields=["fetched_at"])
        return newest, False
    # get_or_create: two refreshes at once store the version once.
    stored, new = GlobalVendorList.objects.get_or_create(
        version=version,
        defaults={
            "tcf_policy_version": data["tcfPolicyVersion"],
            "last_updated": updated,
            "source": source[:500],
            "data": data,
        },
    )
    forget_current()
    return stored, new
