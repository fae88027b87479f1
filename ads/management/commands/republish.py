"""``python manage.py republish``: rebuild the MongoDB delivery documents from PostgreSQL and
tell every web process to reload (after a restore, or if the two ever disagree)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from ads.publishing import republish_all


class Command(BaseCommand):
    help = "Rebuild the ad delivery documents in MongoDB from the authoring database."

    def handle(self, *args: Any, **options: Any) -> None:
        live, placements = republish_all()
        self.stdout.write(f"Published {live} live ad(s) and {placements} placement(s).")
