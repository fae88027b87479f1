"""``python manage.py generate_traffic --site <public id> --days 30 --visitors 100000``:
realistic generated traffic for a site (analytics.traffic_generator), through the real
ingestion path (default) or bulk-loaded into ClickHouse (``--bulk``, for benchmarks);
``--app-devices N`` adds N phones of the site's app updating it over the air."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from ads.models import Ad, CampaignStatus, Placement
from analytics import session_facts
from analytics.traffic_generator import (
    AdInventory,
    Visit,
    bulk_load,
    generate_app_updates,
    generate_visits,
    send_through_ingest,
)
from events.tables import DEDUP_WINDOW_DAYS
from sites.models import Site

# The server refuses events older than its deduplication window; a day less leaves the run
# time to send them all.
INGEST_MAX_DAYS = DEDUP_WINDOW_DAYS - 1


def ad_inventory(site: Site) -> AdInventory:
    """The site's live (campaign, ad, placement) triples; made-up ids when it has no ads."""
    placements = list(Placement.objects.filter(site=site).values_list("pk", flat=True))
    ads = Ad.objects.filter(
        campaign__advertiser__organization=site.organization,
        campaign__status=CampaignStatus.ACTIVE,
    ).values_list("campaign_id", "pk")
    triples = tuple(
        (campaign, ad, placement) for campaign, ad in ads for placement in placements[:3]
    )
    return AdInventory(triples or ((1, 11, 1), (2, 21, 1), (3, 31, 2)))


def counted(visits: Iterator[Visit], bar: Any) -> Iterator[Visit]:
    last = None
    for visit in visits:
        if visit.visitor != last:
            bar.update(1)
            last = visit.visitor
        yield visit


class Command(BaseCommand):
    help = "Generate realistic traffic for a site, through ingestion or bulk-loaded."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--site", required=True, help="the site's public id")
        parser.add_argument("--days", type=int, default=30)
        parser.add_argument("--visitors", type=int, default=1000)
        parser.add_argument(
            "--bulk", action="store_true", help="insert rows into ClickHouse directly"
        )
        parser.add_argument("--seed", type=int, default=7, help="same seed, same traffic")
        parser.add_argument(
            "--app-devices",
            type=int,
            default=0,
            help="phones of the site's app sending over-the-air update events",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        site = Site.objects.filter(public_id=options["site"]).first()
        if site is None:
            raise CommandError(f"no site with public id {options['site']!r}")
        days, visitors = options["days"], options["visitors"]
        if not 1 <= days <= 730 or visitors < 1:
            raise CommandError("--days must be 1-730 and --visitors at least 1")
        if not options["bulk"] and days > INGEST_MAX_DAYS:
            self.stderr.write(
                f"the ingestion path refuses events older than {DEDUP_WINDOW_DAYS} days: "
                f"generating {INGEST_MAX_DAYS} days (use --bulk for more history)"
            )
            days = INGEST_MAX_DAYS
        visits = generate_visits(
            days=days,
            visitors=visitors,
            timezone=site.timezone,
            inventory=ad_inventory(site),
            seed=options["seed"],
        )
        app_devices = generate_app_updates(
            days=days, devices=max(0, options["app_devices"]), seed=options["seed"]
        )
        with tqdm(total=visitors, unit="visitor", disable=None) as bar:
            if options["bulk"]:
                pages, ads = bulk_load(
                    site_id=site.public_id,
                    retention_days=site.retention_days,
                    visits=counted(visits, bar),
                    app_devices=app_devices,
                )
                # Bulk loads are large: build their visits' facts now rather than on every query.
                session_facts.refresh()
                summary = f"{pages:,} page events and {ads:,} ad events loaded"
            else:
                statuses = send_through_ingest(
                    site_id=site.public_id,
                    visits=counted(visits, bar),
                    app_devices=app_devices,
                )
                summary = ", ".join(f"{key}: {count:,}" for key, count in sorted(statuses.items()))
        self.stdout.write(f"{site.name}: {summary}")
