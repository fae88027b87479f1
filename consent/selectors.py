"""Reads of the consent app: the banner as the browser receives it, what a visitor's latest
recorded decision granted (cached for the tracking endpoints), and the proof-of-consent export.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

from dateutil.relativedelta import relativedelta
from django.utils.timezone import now

from consent import vendor_list
from consent.models import (
    TCF_LABELS,
    ConsentBanner,
    ConsentBannerSnapshot,
    ConsentRecord,
    RegionRule,
)
from consent.regions import OPT_IN_REQUIRED
from consent.scope import registrable_domains
from sites.models import Site

# A withdrawal recorded by another web process reaches this one within this time; the tracker
# itself stops sending the browser id at once.
RECORDED_CONSENT_CACHE_SECONDS = 30.0
RECORDED_CONSENT_CACHE_SIZE = 100_000
# None: no decision that still counts (none recorded, expired, or before a material change).
_recorded: OrderedDict[tuple[str, str], tuple[float, frozenset[str] | None]] = OrderedDict()


def banner_for_site(*, site: Site) -> ConsentBanner | None:
    if not site.consent_banner_enabled:
        return None
    return (
        ConsentBanner.objects.filter(site=site)
        .select_related("site")
        .prefetch_related("purposes", "texts", "tcf_restrictions")
        .first()
    )


def banner_config(*, banner: ConsentBanner) -> dict[str, Any]:
    """The banner's part of the tracker config (docs/tracker.md lists every field)."""
    purposes = list(banner.purposes.all())
    languages: dict[str, dict[str, Any]] = {}
    for text in banner.texts.all():
        languages[text.language] = {
            "title": text.title,
            "body": text.body,
            "accept": text.accept_label,
            "reject": text.reject_label,
            "customize": text.customize_label,
            "save": text.save_label,
            "settings": text.settings_label,
            "tcf": {
                **TCF_LABELS,
                **text.tcf_labels,
                "notice": text.tcf_notice,
                "vendors": text.vendors_label,
            },
            "purposes": {
                purpose.key: {
                    "name": purpose.name,
                    "description": purpose.description,
                    **purpose.translations.get(text.language, {}),
                }
                for purpose in purposes
            },
        }
    config: dict[str, Any] = {
        "version": banner.version,
        "language": banner.default_language,
        "position": banner.position,
        "colors": {
            "background": banner.background_color,
            "text": banner.text_color,
            "accent": banner.accent_color,
        },
        "texts": languages,
        "purposes": [
            {
                "key": purpose.key,
                "required": purpose.required,
                "tcf": purpose.tcf_purposes,
                "signals": purpose.consent_mode_signals,
            }
            for purpose in purposes
        ],
        # "advanced" or "basic" (docs/tracker.md), false when off.
        "consentMode": banner.google_consent_mode and banner.consent_mode_type,
        "tcf": None,
        # Expiry and scope: decisions older than expiryMonths, or given to a version before
        # reprompt (the latest material change), are asked again; the decision is a cookie on
        # the registrable domain among these that the page's host belongs to.
        "reprompt": banner.reprompt_version,
        "expiryMonths": banner.consent_expiry_months,
        "domains": registrable_domains(banner.site.allowed_domains or []),
        # Location rules: outside the opt-in regions the banner does what "elsewhere" says; it
        # then asks the server for the visitor's rule (GET /region), and Consent Mode defaults
        # are declared per region.
        "elsewhere": banner.outside_regulated_regions,
    }
    if banner.outside_regulated_regions != RegionRule.OPT_IN:
        config["optInRegions"] = OPT_IN_REQUIRED
    if banner.tcf_enabled:
        config["tcf"] = _tcf_config(banner=banner, purposes=purposes)
    return config


def _tcf_config(*, banner: ConsentBanner, purposes: list[Any]) -> dict[str, Any]:
    """The TCF part: vendors with their declarations, the IAB's texts (or the publisher's own),
    and the publisher restrictions with explicit vendor lists (as the TC string encodes them)."""
    vendor_ids = sorted(set(banner.tcf_vendor_ids or []))
    vendors = vendor_list.vendors_for_banner(vendor_ids, banner.default_language)
    site_tcf_purposes = [tcf for purpose in purposes for tcf in purpose.tcf_purposes]
    names = vendor_list.standard_names(vendors, site_tcf_purposes)
    custom = banner.tcf_non_standard_texts or {}
    for key, text in custom.items():
        names["purposes"][key] = [text["name"], text["description"]]
    known = {vendor["id"] for vendor in vendors}
    restrictions = []
    for restriction in banner.tcf_restrictions.all():
        listed = sorted(known & set(restriction.vendor_ids or vendor_ids))
        if listed:
            restrictions.append(
                {
                    "purpose": restriction.purpose,
                    "type": restriction.restriction_type,
                    "vendors": listed,
                }
            )
    return {
        "cmpId": banner.tcf_cmp_id,
        "cmpVersion": banner.tcf_cmp_version,
        "vendorListVersion": vendor_list.vendor_list_version(),
        "tcfPolicyVersion": vendor_list.tcf_policy_version(),
        "publisherCC": banner.tcf_publisher_country,
        "useNonStandardTexts": bool(custom),
        "restrictions": restrictions,
        "names": names,
        "vendors": vendors,
    }


def banner_snapshot_latest(*, banner: ConsentBanner, version: int) -> ConsentBannerSnapshot | None:
    """The latest revision of what the banner showed under this version (None if none)."""
    return banner.snapshots.filter(version=version).order_by("-revision").first()


def cached_recorded_purposes(
    *, site_public_id: str, visitor_id: str
) -> tuple[bool, frozenset[str] | None]:
    """(found in cache, purposes granted) without touching the database."""
    entry = _recorded.get((site_public_id, visitor_id))
    if entry is None or entry[0] < time.monotonic():
        return False, None
    return True, entry[1]


_VALIDITY_FIELDS = (
    "recorded_at",
    "banner_version",
    "site__consent_banner__consent_expiry_months",
    "site__consent_banner__reprompt_version",
)


def _latest_valid_record(
    *, site_public_id: str, visitor_id: str, fields: tuple[str, ...]
) -> dict[str, Any] | None:
    """The visitor's latest record (``fields`` of it) if it still counts: not older than the
    banner's expiry, and answering a version at or after its latest material change."""
    latest = (
        ConsentRecord.objects.filter(site__public_id=site_public_id, visitor_id=visitor_id)
        .order_by("-recorded_at", "-id")
        .values(*fields, *_VALIDITY_FIELDS)
        .first()
    )
    return latest if latest is not None and _still_valid(latest) else None


def recorded_purposes(*, site_public_id: str, visitor_id: str) -> frozenset[str] | None:
    """What the visitor's latest recorded decision granted; None when there is no decision
    that still counts: none recorded, or the latest is older than the banner's expiry or
    answered a version before its latest material change (the banner asks again then)."""
    latest = _latest_valid_record(
        site_public_id=site_public_id, visitor_id=visitor_id, fields=("granted",)
    )
    granted = None if latest is None else frozenset(latest["granted"])
    key = (site_public_id, visitor_id)
    _recorded[key] = (time.monotonic() + RECORDED_CONSENT_CACHE_SECONDS, granted)
    _recorded.move_to_end(key)
    if len(_recorded) > RECORDED_CONSENT_CACHE_SIZE:
        _recorded.popitem(last=False)
    return granted


def recorded_decision(*, site_public_id: str, visitor_id: str) -> dict[str, Any] | None:
    """The visitor's latest recorded decision that still counts, as the banner stores one
    (version, granted, denied, TC string, time in ms), for another domain of the site to adopt
    (docs/cross-domain.md); None when there is none."""
    latest = _latest_valid_record(
        site_public_id=site_public_id,
        visitor_id=visitor_id,
        fields=("granted", "denied", "tc_string"),
    )
    if latest is None:
        return None
    return {
        "version": latest["banner_version"],
        "granted": latest["granted"],
        "denied": latest["denied"],
        "tc": latest["tc_string"],
        "at": int(latest["recorded_at"].timestamp() * 1000),
    }


def _still_valid(record: Mapping[str, Any]) -> bool:
    months = record["site__consent_banner__consent_expiry_months"]
    reprompt = record["site__consent_banner__reprompt_version"]
    if months is not None and record["recorded_at"] <= now() - relativedelta(months=months):
        return False
    return reprompt is None or record["banner_version"] >= reprompt


def forget_recorded_purposes(*, site_public_id: str, visitor_id: str) -> None:
    _recorded.pop((site_public_id, visitor_id), None)


def forget_all_recorded_purposes() -> None:
    _recorded.clear()


PROOF_OF_CONSENT_COLUMNS = [
    "recorded_at",
    "record_id",
    "visitor_id",
    "visitor_id_kind",
    "granted",
    "denied",
    "banner_version",
    "banner_snapshot",
    "tc_string",
    "language",
    "user_agent_family",
    "country",
]


def snapshot_label(snapshot_id: int | None) -> str:
    """How the export names a snapshot (its id); empty for records made before snapshots."""
    return "" if snapshot_id is None else str(snapshot_id)


def proof_of_consent_rows(*, site: Site) -> Iterator[list[str]]:
    """Every decision recorded for the site, oldest first, as CSV cells; ``banner_snapshot``
    is the id of the snapshot in proof_of_consent_snapshots."""
    records = ConsentRecord.objects.filter(site=site).order_by("recorded_at", "id")
    for record in records.iterator(chunk_size=2000):
        yield [
            record.recorded_at.isoformat(),
            str(record.pk),
            record.visitor_id,
            record.visitor_id_kind,
            " ".join(record.granted),
            " ".join(record.denied),
            str(record.banner_version),
            snapshot_label(record.snapshot_id),
            record.tc_string,
            record.language,
            record.user_agent_family,
            record.country,
        ]


def proof_of_consent_snapshots(*, site: Site) -> list[dict[str, Any]]:
    """Every snapshot of the site's banner: what each version (and revision) showed."""
    snapshots = ConsentBannerSnapshot.objects.filter(banner__site=site).order_by(
        "version", "revision"
    )
    return [
        {
            "id": snapshot.pk,
            "site": site.public_id,
            "version": snapshot.version,
            "revision": snapshot.revision,
            "created_at": snapshot.created_at.isoformat(),
            "fingerprint": snapshot.fingerprint,
            "content": snapshot.content,
        }
        for snapshot in snapshots
    ]
