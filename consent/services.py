"""Writes of the consent app: default banners, banner versions, decision records (each
mirrored to ClickHouse soon after, consent.mirroring) and the stored IAB Global Vendor List.
Called by the /consent endpoint (ingest.endpoints), the admin, consent.receivers, the demo
seeding and ``manage.py refresh_vendor_list``."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import urllib3
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from consent import selectors, vendor_list
from consent.models import (
    BannerText,
    ConsentBanner,
    ConsentPurpose,
    ConsentRecord,
    GlobalVendorList,
)
from consent.tasks import mirror_consent_records
from sites.models import Site

DEFAULT_PURPOSES: list[dict[str, Any]] = [
    {
        "key": "necessary",
        "name": "Strictly necessary",
        "description": "Remembers your choices here. Always on.",
        "required": True,
    },
    {
        "key": "analytics",
        "name": "Audience measurement",
        "description": "Counts visits with a random identifier kept in your browser.",
        "tcf_purposes": [1, 8, 9, 10],
        "consent_mode_signals": ["analytics_storage"],
    },
    {
        "key": "ads",
        "name": "Personalised advertising",
        "description": "Chooses ads from what you viewed; without it ads follow the page only.",
        "tcf_purposes": [1, 2, 3, 4, 7],
        "consent_mode_signals": ["ad_storage", "ad_user_data", "ad_personalization"],
    },
]
logger = logging.getLogger(__name__)
TEXT_FIELDS = (
    "language",
    "title",
    "body",
    "accept_label",
    "reject_label",
    "customize_label",
    "save_label",
    "settings_label",
    "vendors_label",
)


def consent_banner_ensure(*, site: Site) -> ConsentBanner:
    """The site's banner, created with the standard purposes and English texts if missing."""
    with transaction.atomic():
        banner, created = ConsentBanner.objects.get_or_create(site=site)
        if created:
            for order, purpose in enumerate(DEFAULT_PURPOSES):
                ConsentPurpose.objects.create(banner=banner, order=order, **purpose)
            BannerText.objects.create(banner=banner, language="en")
            banner.content_fingerprint = consent_banner_fingerprint(banner=banner)
            banner.scope_fingerprint = consent_banner_scope_fingerprint(banner=banner)
            banner.save(update_fields=["content_fingerprint", "scope_fingerprint"])
    return banner


def consent_banner_fingerprint(*, banner: ConsentBanner) -> str:
    """A digest of what visitors agree to (purposes and texts); colours and position are not
    part of it, so restyling a banner does not ask everyone again."""
    content: dict[str, Any] = {
        "purposes": list(
            banner.purposes.order_by("key").values(
                "key",
                "name",
                "description",
                "required",
                "tcf_purposes",
                "consent_mode_signals",
                "translations",
            )
        ),
        "texts": list(banner.texts.order_by("language").values(*TEXT_FIELDS)),
        "vendors": sorted(banner.tcf_vendor_ids or []) if banner.tcf_enabled else [],
    }
    if banner.tcf_enabled:
        # Only then, so that banners without TCF keep the fingerprint (and version) they had.
        content["tcf"] = [
            list(banner.tcf_restrictions.values_list("purpose", "restriction_type", "vendor_ids")),
            banner.tcf_non_standard_texts,
            list(banner.texts.order_by("language").values("language", "tcf_notice", "tcf_labels")),
        ]
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def consent_banner_scope_fingerprint(*, banner: ConsentBanner) -> str:
    """A digest of what a decision covers beyond wording: purpose keys, which are required,
    their TCF purposes and Consent Mode signals, and the TCF vendors. A change of it always
    asks everyone again, whatever the editor said."""
    content = {
        "purposes": list(
            banner.purposes.order_by("key").values(
                "key", "required", "tcf_purposes", "consent_mode_signals"
            )
        ),
        "vendors": sorted(banner.tcf_vendor_ids or []) if banner.tcf_enabled else [],
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def consent_banner_refresh_version(*, banner: ConsentBanner, material: bool = True) -> str:
    """Raise the banner's version if what visitors read or agree to changed.

    Every change of content makes a new version (records name the version they answered). It
    asks visitors again (``reprompt_version``) when it is material: the editor said so, or the
    scope changed (purposes, TCF purposes, signals, vendors), which is material whatever the
    editor said. A minor edit (a typo fix) keeps the decisions already given.
    Returns "" (no change), "minor" or "material"."""
    fingerprint = consent_banner_fingerprint(banner=banner)
    if fingerprint == banner.content_fingerprint:
        return ""
    scope = consent_banner_scope_fingerprint(banner=banner)
    material = material or scope != banner.scope_fingerprint
    banner.content_fingerprint = fingerprint
    banner.scope_fingerprint = scope
    banner.version += 1
    if material:
        banner.reprompt_version = banner.version
    banner.save(
        update_fields=["content_fingerprint", "scope_fingerprint", "version", "reprompt_version"]
    )
    return "material" if material else "minor"


def consent_record_create(
    *,
    site_public_id: str,
    visitor_id: str,
    visitor_id_kind: str,
    granted: Iterable[str],
    denied: Iterable[str],
    banner_version: int,
    tc_string: str = "",
    language: str = "",
    user_agent_family: str = "",
    country: str = "",
) -> ConsentRecord:
    site = Site.objects.get(public_id=site_public_id)
    record = ConsentRecord.objects.create(
        site=site,
        visitor_id=visitor_id,
        visitor_id_kind=visitor_id_kind,
        granted=sorted(set(granted)),
        denied=sorted(set(denied)),
        banner_version=banner_version,
        tc_string=tc_string,
        language=language,
        user_agent_family=user_agent_family[:64],
        country=country,
    )
    selectors.forget_recorded_purposes(site_public_id=site_public_id, visitor_id=visitor_id)
    transaction.on_commit(_mirror_soon)
    return record


def _mirror_soon() -> None:
    try:
        mirror_consent_records.delay()
    except Exception:
        # The record is safe in the database; the periodic job mirrors it later.
        logger.warning("consent record not mirrored yet", exc_info=True)


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
    vendor_list.forget_current()
    return stored, new
