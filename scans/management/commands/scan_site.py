"""``python manage.py scan_site <site> [--url URL ...]``: scan a site's pages for cookies,
storage and third-party requests before and after consent, store the scan (shown in the admin)
and print what was found, flagging what was set or loaded before consent (docs/scans.md)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from naboria.locks import LockBusy
from scans.models import Scan, ScanStatus, ScanTrigger
from scans.services import scan_run
from sites.models import Site


class Command(BaseCommand):
    help = "Scan a site's pages for cookies and trackers before and after consent (Chromium)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("site", help="The site's public id.")
        parser.add_argument(
            "--url",
            action="append",
            default=[],
            help="Scan only this URL (repeatable); it must be on the site's allowed domains. "
            "Without it: home pages, configured URLs and the most-viewed pages.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        site = Site.objects.filter(public_id=options["site"]).first()
        if site is None:
            raise CommandError(f"no site with public id {options['site']!r}")
        try:
            scan = scan_run(site=site, trigger=ScanTrigger.COMMAND, only_urls=options["url"])
        except LockBusy:
            raise CommandError(f"a scan of {site.public_id} is already running") from None
        self._report(scan)
        if scan.status == ScanStatus.FAILED:
            raise CommandError(f"scan {scan.pk} failed: {scan.error}")

    def _report(self, scan: Scan) -> None:
        write = self.stdout.write
        write(
            f"scan {scan.pk} of {scan.site.public_id}: {scan.status}, "
            f"{scan.pages_scanned} page(s), {scan.flagged} finding(s) before consent"
        )
        if scan.error:
            write(scan.error)
        for page in scan.pages.prefetch_related("findings"):
            write(f"\n{page.url}" + (f"  ERROR {page.error}" if page.error else ""))
            if not page.error and not page.banner_found:
                write("  (no Naboria banner: nothing was accepted)")
            if page.blocked_hosts:
                write(f"  (refused non-public hosts: {', '.join(page.blocked_hosts)})")
            for finding in page.findings.all():
                mark = "BEFORE CONSENT" if finding.flagged else "after consent "
                detail = finding.resource_types or (
                    f"expires {finding.expires_at:%Y-%m-%d}" if finding.expires_at else ""
                )
                write(
                    f"  {mark}  {finding.get_kind_display():20} {finding.name}  "
                    f"[{finding.domain}, {finding.get_party_display()}] {detail}".rstrip()
                )
