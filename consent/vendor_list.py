"""The IAB TCF Global Vendor List, read from the copy shipped in consent/data/.

Used by the banner admin (which vendor ids exist) and the tracker config (each chosen vendor's
name and declared purposes, which decide the vendor bits of the TC string in the browser).
Update the copy with scripts/update_vendor_list.sh; the TC strings then carry its version.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

VENDOR_LIST_PATH = Path(__file__).with_name("data") / "tcf-vendor-list.json"


@cache
def _vendor_list() -> dict[str, Any]:
    return json.loads(VENDOR_LIST_PATH.read_text())


def vendor_list_version() -> int:
    return int(_vendor_list()["vendorListVersion"])


def tcf_policy_version() -> int:
    return int(_vendor_list()["tcfPolicyVersion"])


def unknown_vendor_ids(ids: list[int]) -> list[int]:
    vendors = _vendor_list()["vendors"]
    return [vendor_id for vendor_id in ids if str(vendor_id) not in vendors]


def vendors_for_banner(ids: list[int]) -> list[dict[str, Any]]:
    """What the banner needs of each vendor: its name and what it declares."""
    vendors = _vendor_list()["vendors"]
    return [
        {
            "id": vendor["id"],
            "name": vendor["name"],
            "purposes": vendor["purposes"],
            "legIntPurposes": vendor["legIntPurposes"],
            "specialFeatures": vendor["specialFeatures"],
            "specialPurposes": vendor["specialPurposes"],
        }
        for vendor_id in sorted(set(ids))
        if (vendor := vendors.get(str(vendor_id))) is not None
    ]
