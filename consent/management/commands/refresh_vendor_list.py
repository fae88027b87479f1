"""manage.py refresh_vendor_list [--source URL|FILE]: store the newest IAB Global Vendor List.

Banners use the newest stored list (consent.vendor_list); run it weekly, as the IAB republishes
the list, or the admin and the system check consent.W001 warn that it is stale."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from consent.vendor_list import VendorListInvalid, vendor_list_refresh


class Command(BaseCommand):
    help = "Fetch the IAB TCF Global Vendor List (GVL v3) and store it if it is newer."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--source",
            default="",
            help="URL or file of a GVL v3 vendor-list.json (default: TCF_VENDOR_LIST_URL).",
        )

    def handle(self, *args: Any, source: str, **options: Any) -> None:
        try:
            stored, new = vendor_list_refresh(source=source)
        except VendorListInvalid as error:
            raise CommandError(str(error)) from None
        vendors = len(stored.data["vendors"])
        state = "stored" if new else "already stored (no newer version)"
        self.stdout.write(
            f"vendor list version {stored.version} of {stored.last_updated:%Y-%m-%d}, "
            f"{vendors} vendors: {state}"
        )
