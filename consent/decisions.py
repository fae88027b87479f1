"""Whether a decision could have come from the banner version it names: the check the server
makes before it records one (consent.services.consent_record_create), so the proof of consent
holds only what a visitor could have chosen.

The banner (tracker/src/cmp) sends every purpose of its version, granted or denied, with the
strictly necessary ones granted; with TCF on it sends the TC string it made from the granted
purposes: their TCF purposes, and no other, carry consent, under the CMP id of the banner.
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
    expected = {tcf_id for key in granted for tcf_id in purposes[key].get("tcf", [])}
    extra = decoded.purpose_consents - expected
    if extra:
        return (
            f"the TC string consents to TCF purposes {_listed(extra)}, "
            "which no granted purpose stands for"
        )
    lacking = expected - decoded.purpose_consents
    if lacking:
        return (
            f"the TC string does not consent to TCF purposes {_listed(lacking)} "
            "of the granted purposes"
        )
    return None


def optional_purposes_granted(*, content: dict[str, Any], granted: Collection[str]) -> list[str]:
    """The purposes granted that are not strictly necessary (a grant, as opposed to a
    withdrawal, which grants the necessary ones only)."""
    required = {purpose["key"] for purpose in content["purposes"] if purpose["required"]}
    return sorted(set(granted) - required)
