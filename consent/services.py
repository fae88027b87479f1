"""Writes of the consent app: default banners, banner versions and their snapshots, decision
records (each checked against the snapshot of the version it names, consent.decisions, and
mirrored to ClickHouse soon after, consent.mirroring; purged after their retention period by
consent.retention) and the stored IAB Global Vendor List. Called by the /consent endpoint
(ingest.endpoints), the admin, consent.receivers, the demo seeding and
``manage.py refresh_vendor_list``."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction

from consent import selectors
from consent.decisions import decision_refusal, optional_purposes_granted
from consent.models import (
    BannerText,
    ConsentBanner,
    ConsentBannerSnapshot,
    ConsentPurpose,
    ConsentRecord,
)
from consent.signals import consent_recorded
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
    # Also the first snapshot of a banner made before snapshots existed.
    consent_banner_snapshot_take(banner=banner)
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
    A snapshot of what it now shows is kept either way. Returns "" (no new version), "minor"
    or "material"."""
    fingerprint = consent_banner_fingerprint(banner=banner)
    if fingerprint == banner.content_fingerprint:
        consent_banner_snapshot_take(banner=banner)  # a restyle is kept as a revision
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
    consent_banner_snapshot_take(banner=banner)
    return "material" if material else "minor"


def consent_banner_snapshot_take(*, banner: ConsentBanner) -> ConsentBannerSnapshot:
    """The snapshot of what the banner shows now (consent.selectors.banner_config): the latest
    one of its version if that says the same, else a new revision of the version (a restyle,
    or a change made outside the admin, keeps the version but is kept too)."""
    content = selectors.banner_config(banner=ConsentBanner.objects.get(pk=banner.pk))
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()
    for _attempt in range(3):
        latest = selectors.banner_snapshot_latest(banner=banner, version=content["version"])
        if latest is not None and latest.fingerprint == digest:
            return latest
        try:
            with transaction.atomic():
                return ConsentBannerSnapshot.objects.create(
                    banner=banner,
                    version=content["version"],
                    revision=latest.revision + 1 if latest else 1,
                    fingerprint=digest,
                    content=content,
                )
        except IntegrityError:  # another process took this revision first: look again
            continue
    raise RuntimeError(f"could not take a snapshot of {banner}")


class ConsentDecisionRefused(ValueError):
    """A decision the banner could not have produced (status 400), or a grant for a browser
    id whose owner it did not prove to come from (403); the message says why."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _snapshot_for(*, site: Site, version: int) -> ConsentBannerSnapshot | None:
    banner = ConsentBanner.objects.filter(site=site).first()
    if banner is None:
        return None
    if version == banner.version:
        # What browsers are shown now, kept if it changed since the last snapshot.
        return consent_banner_snapshot_take(banner=banner)
    return selectors.banner_snapshot_latest(banner=banner, version=version)


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
    visitor_id_proven: bool = True,
) -> ConsentRecord:
    """Record a decision; ConsentDecisionRefused if the banner version it names does not
    exist or could not have produced it (consent.decisions), or if it grants anything beyond
    the strictly necessary for a browser id not ``visitor_id_proven`` (its token did not
    verify). A withdrawal needs no proof: it can only reduce what is processed."""
    site = Site.objects.get(public_id=site_public_id)
    snapshot = _snapshot_for(site=site, version=banner_version)
    if snapshot is None:
        raise ConsentDecisionRefused(f"unknown banner version {banner_version} for this site")
    granted, denied = sorted(set(granted)), sorted(set(denied))
    refusal = decision_refusal(
        content=snapshot.content, granted=granted, denied=denied, tc_string=tc_string
    )
    if refusal:
        raise ConsentDecisionRefused(refusal)
    optional = optional_purposes_granted(content=snapshot.content, granted=granted)
    if optional and not visitor_id_proven:
        raise ConsentDecisionRefused(
            f"a decision granting {', '.join(optional)} for a browser id needs that id's valid "
            "token (call /init for a fresh one)",
            status=403,
        )
    record = ConsentRecord.objects.create(
        site=site,
        snapshot=snapshot,
        visitor_id=visitor_id,
        visitor_id_kind=visitor_id_kind,
        granted=granted,
        denied=denied,
        banner_version=banner_version,
        tc_string=tc_string,
        language=language,
        user_agent_family=user_agent_family[:64],
        country=country,
    )
    selectors.forget_recorded_purposes(site_public_id=site_public_id, visitor_id=visitor_id)
    transaction.on_commit(_mirror_soon)
    transaction.on_commit(
        lambda: consent_recorded.send(
            sender=ConsentRecord,
            site_public_id=site_public_id,
            visitor_id=visitor_id,
            granted=granted,
        )
    )
    return record


def _mirror_soon() -> None:
    try:
        mirror_consent_records.delay()
    except Exception:
        # The record is safe in the database; the periodic job mirrors it later.
        logger.warning("consent record not mirrored yet", exc_info=True)
