"""``python manage.py migrate_clickhouse``: apply pending ClickHouse migrations."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from analytics import clickhouse_migrations
from naboria.clickhouse import ClickHouseUnavailable
from naboria.config import ConfigurationError


class Command(BaseCommand):
    help = "Apply pending ClickHouse migrations (idempotent) and list what was applied."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--list", action="store_true", help="Show applied/pending and exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["list"]:
                done = clickhouse_migrations.applied()
                for migration in clickhouse_migrations.discover():
                    mark = "X" if migration.name in done else " "
                    self.stdout.write(f"[{mark}] {migration.name}")
                return
            applied_now = clickhouse_migrations.apply_pending()
        except ClickHouseUnavailable as error:
            raise ConfigurationError("CLICKHOUSE_URL", f"unreachable ({error})") from None
        for name in applied_now:
            self.stdout.write(f"Applied ClickHouse migration {name}")
        if not applied_now:
            self.stdout.write("ClickHouse schema is up to date.")
