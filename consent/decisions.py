"""Whether a decision could have come from the banner version it names: the check the server
makes before it records one (consent.services.consent_record_create), so the proof of consent
holds only what a visitor could have chosen.

The banner (tracker/src/cmp) sends every purpose of its version, granted or denied, with the
strictly necessary ones granted; with TCF on it sends the TC string of the TCF choices, under
the CMP id of the banner: consent only to TCF purposes, special features and vendors the
version offered, and never to all the TCF purposes of a purpose the decision denies.
docs/consent.md lists the refusals.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from consent.tc_string import InvalidTCString, tc_string_decode


def _listed(ids: Collection[str] | Collection[int]) -> str:
    return ", ".join(str(item) for item in sorted(ids))


def decision_refusal(
    *,
    content: dict[str, Any],
    granted: Collection[str],
    denied: Collection[str],
    tc_string: str,
) -> str | None:
    """Why the banner whose snapshot ``content`` (consent.selectors.banner_config) is could
    not have produced this decision; None if it could."""
    version = content["version"]
    purposes = {purpose["key"]: purpose for purpose in content["purposes"]}
    chosen = set(granted) | set(denied)
    unknown = chosen - purposes.keys()
    if unknown:
        return f"unknown purposes for banner version {version}: {_listed(unknown)}"
    missing = purposes.keys() - chosen
    if missing:
        return (
            f"a decision grants or denies every purpose of banner version {version}; "
            f"missing: {_listed(missing)}"
        )
    necessary = {key for key in denied if purposes[key]["required"]}
    if necessary:
        return f"strictly necessary purposes cannot be denied: {_listed(necessary)}"
    tcf = content.get("tcf")
    if not tcf:
        return (
            f"banner version {version} does not use IAB TCF: it sends no TC string"
            if tc_string
            else None
        )
    if not tc_string:
        return f"banner version {version} uses IAB TCF: the decision needs its TC string"
    try:
        decoded = tc_string_decode(tc_string)
    except InvalidTCString as error:
        return f"the TC string does not decode: {error}"
    if decoded.cmp_id != tcf["cmpId"]:
        return f"the TC string names CMP {decoded.cmp_id}, the banner is CMP {tcf['cmpId']}"
    # The TCF part of the banner asks its own questions (per TCF purpose, special feature and
    # vendor, on the second layer), apart from the site's purposes: the string can only say
    # yes to what this version offered.
    vendors = tcf.get("vendors") or []
    offered = {tcf_id for purpose in purposes.values() for tcf_id in purpose.get("tcf", [])}
    offered.update(tcf_id for vendor in vendors for tcf_id in vendor.get("purposes", []))
    extra = decoded.purpose_consents - offered
    if extra:
        return (
            f"the TC string consents to TCF purposes {_listed(extra)}, "
            f"which banner version {version} does not ask for"
        )
    features = {feature for vendor in vendors for feature in vendor.get("specialFeatures", [])}
    extra = decoded.special_feature_optins - features
    if extra:
        return (
            f"the TC string opts in to special features {_listed(extra)}, "
            f"which no vendor of banner version {version} declares"
        )
    listed = {vendor["id"] for vendor in vendors}
    extra = (decoded.vendor_consents | decoded.vendor_legitimate_interests) - listed
    if extra:
        return f"the TC string names vendors {_listed(extra)}, not among banner version {version}'s"
    # With TCF on, a site purpose standing for TCF purposes is granted exactly when all of them
    # were chosen; the string may then carry fewer (Global Privacy Control takes the ad ones
    # away), never all of a denied purpose's.
    for key in denied:
        ids = set(purposes[key].get("tcf", []))
        if ids and ids <= decoded.purpose_consents:
            return (
                f"the TC string consents to every TCF purpose of {key} ({_listed(ids)}), "
                "which the decision denies"
            )
    return None


def optional_purposes_granted(*, content: dict[str, Any], granted: Collection[str]) -> list[str]:
    """The purposes granted that are not strictly necessary (a grant, as opposed to a
    withdrawal, which grants the necessary ones only)."""
    required = {purpose["key"] for purpose in content["purposes"] if purpose["required"]}
    return sorted(set(granted) - required)
