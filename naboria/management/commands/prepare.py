"""``python manage.py prepare [--demo]``: everything a fresh or upgraded installation needs
before it serves, in one process: SQL migrations, ClickHouse migrations, the Kafka topics
(with the configured partitions, when Kafka is configured), static files, and with ``--demo``
the demo data of ``make run``. Safe to run on every start."""

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ingest.topics import ensure_ingest_topics
from naboria import kafka_client


class Command(BaseCommand):
    help = "Migrate SQL and ClickHouse, collect static files, optionally seed the demo."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--demo", action="store_true", help="Also seed the demo data.")

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("SQL schema is up to date.")
        call_command("migrate_clickhouse")
        if kafka_client.is_enabled():
            # Before any role produces: producers never let the broker make a topic.
            if not ensure_ingest_topics():
                raise CommandError("Kafka did not answer: the topics could not be checked")
            self.stdout.write("Kafka topics are in place.")
        call_command("collectstatic", interactive=False, verbosity=0)
        if options["demo"]:
            call_command("seed_demo")
