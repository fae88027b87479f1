"""``python manage.py dbt build`` (or any dbt command: ``dbt test --select marts``,
``dbt docs generate``, ``dbt ls``): dbt on the project in ``dbt/``, in this process, with a
profile generated from CLICKHOUSE_URL, so it works in the embedded profile too
(analytics.ml.dbt_runner)."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analytics.ml.dbt_runner import dbt_invoke


class Command(BaseCommand):
    help = "Run a dbt command (default: build) on dbt/ against the configured ClickHouse."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "dbt_args",
            nargs=argparse.REMAINDER,
            help="the dbt command and its options, as on dbt's command line",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        outcome = dbt_invoke(options["dbt_args"] or ["build"])
        if not outcome.success:
            raise CommandError(outcome.summary())
        self.stdout.write(outcome.summary())
