"""``python manage.py seed_demo``: the demo organization, site and users used by ``make run``
(and ``manage.py prepare --demo``), with the demo site's banner, tags, ads and a month of
generated traffic.

It composes every app (sites, consent, tags, ads, analytics), so it lives in the composition root
(naboria), not in one of them.

Idempotent: a second run finds what the first made and prints the same credentials, which are
generated once and kept in ``<NABORIA_VAR_DIR>/demo-credentials.json`` (never committed).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from ads.services import demo_ads_ensure
from analytics.management.commands.generate_traffic import ad_inventory
from analytics.traffic_generator import bulk_load, generate_app_updates, generate_visits
from consent.services import consent_banner_ensure
from naboria import clickhouse
from sites.models import Organization, Role, Site
from sites.selectors import DEMO_ORGANIZATION_SLUG
from sites.services import membership_set, organization_create, site_create
from tags.services import demo_tags_ensure

DEMO_SITE_NAME = "Demo shop"


def _credentials(path: Path) -> dict[str, str]:
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
        return stored
    generated = {"admin": secrets.token_urlsafe(12), "marketer": secrets.token_urlsafe(12)}
    path.write_text(json.dumps(generated, indent=2))
    path.chmod(0o600)
    return generated


DEMO_VISITORS = 1500
DEMO_APP_DEVICES = 400  # phones of the shop's app updating over the air (App releases tab)


def demo_traffic_ensure(*, site: Site) -> str:
    """A month of generated traffic for the demo site, once; what was loaded ("" if nothing)."""
    existing = clickhouse.get_client().query(
        "SELECT count() FROM page_events WHERE site_id = {site:String}",
        parameters={"site": site.public_id},
    )
    if existing.result_rows[0][0]:
        return ""
    visits = generate_visits(
        days=30, visitors=DEMO_VISITORS, timezone=site.timezone, inventory=ad_inventory(site)
    )
    pages, ads = bulk_load(
        site_id=site.public_id,
        retention_days=site.retention_days,
        visits=visits,
        app_devices=generate_app_updates(days=30, devices=DEMO_APP_DEVICES),
    )
    return f"{pages:,} page events, {ads:,} ad events"


class Command(BaseCommand):
    help = "Create the demo organization, site, superuser and marketer (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        passwords = _credentials(Path(settings.VAR_DIR) / "demo-credentials.json")
        user_model = get_user_model()
        with transaction.atomic():
            organization = Organization.objects.filter(slug=DEMO_ORGANIZATION_SLUG).first()
            if organization is None:
                organization = organization_create(name="Naboria Demo", slug=DEMO_ORGANIZATION_SLUG)
            site = Site.objects.filter(organization=organization, name=DEMO_SITE_NAME).first()
            if site is None:
                site = site_create(
                    organization=organization,
                    name=DEMO_SITE_NAME,
                    allowed_domains=["127.0.0.1", "localhost"],
                    timezone="Europe/Paris",
                    recommendations_enabled=True,  # the demo page shows them
                )
            consent_banner_ensure(site=site)
            tags = demo_tags_ensure(site=site)
            placement = demo_ads_ensure(site=site)
            for username, superuser, role in [
                ("admin", True, Role.OWNER),
                ("marketer", False, Role.MARKETER),
            ]:
                user = user_model.objects.filter(username=username).first()
                if user is None:
                    user = user_model(username=username, is_superuser=superuser, is_staff=True)
                if not user.check_password(passwords[username]):
                    user.set_password(passwords[username])
                user.save()
                membership_set(organization=organization, user=user, role=role)

        seeded = demo_traffic_ensure(site=site)
        self.stdout.write(f"Demo site: {site.name} (public id {site.public_id})")
        if seeded:
            self.stdout.write(f"Demo traffic: {seeded} (30 days)")
        self.stdout.write(f"Demo tags:      {', '.join(tag.name for tag in tags)}")
        self.stdout.write(f"Demo placement: {placement.name} (key {placement.key})")
        self.stdout.write(f"Admin login:    admin / {passwords['admin']}")
        self.stdout.write(f"Marketer login: marketer / {passwords['marketer']}")
