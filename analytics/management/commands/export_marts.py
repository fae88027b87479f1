"""``python manage.py export_marts [--out DIR] [--mart NAME ...]``: the feature marts as Parquet,
one folder per mart, partitioned by day (``date=YYYY-MM-DD/part.parquet``), written by
ClickHouse itself (analytics.ml.export). Build the marts first: ``python manage.py dbt build``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analytics.ml.export import MARTS, default_out_dir, export_marts
from naboria.clickhouse import ClickHouseUnavailable


class Command(BaseCommand):
    help = "Export the feature marts to Parquet, partitioned by date."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--out", type=Path, default=None, help="folder (default: <NABORIA_VAR_DIR>/marts)"
        )
        parser.add_argument(
            "--mart", action="append", choices=MARTS, help="only this mart (repeatable)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            exported = export_marts(
                out_dir=options["out"] or default_out_dir(), marts=options["mart"] or MARTS
            )
        except ClickHouseUnavailable as error:
            raise CommandError(f"ClickHouse is unreachable ({error})") from None
        for mart in exported:
            self.stdout.write(
                f"{mart.name}: {mart.rows:,} rows in {len(mart.days)} daily files "
                f"under {mart.directory}"
            )
