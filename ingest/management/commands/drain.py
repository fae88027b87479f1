"""``python manage.py drain``: the drain as a process of its own, to scale it separately from
the Celery workers (then set DRAIN_IN_WORKER=false on them). SIGTERM or Ctrl-C finishes and
commits the current batches before exiting. ``--metrics-port`` serves its Prometheus metrics
(it has no web server of its own)."""

from __future__ import annotations

import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ingest.drain import CONSUMERS, DrainRunner
from naboria.config import exit_on_configuration_error
from naboria.health import assert_dependencies_reachable
from naboria.metrics import serve_metrics


class Command(BaseCommand):
    help = "Consume the event topics into ClickHouse until SIGTERM."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--consumer",
            action="append",
            choices=sorted(CONSUMERS),
            help="Run only this consumer (repeatable); default: all.",
        )
        parser.add_argument(
            "--metrics-port",
            type=int,
            help="Serve this process's Prometheus metrics (rows, lag per partition, insert "
            "latency) on this port, with METRICS_TOKEN if set; default: none.",
        )
        parser.add_argument(
            "--metrics-address",
            default="127.0.0.1",
            help="The address of the metrics port (default 127.0.0.1).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.KAFKA_BOOTSTRAP_SERVERS:
            raise CommandError(
                "KAFKA_BOOTSTRAP_SERVERS is not set: without Kafka, events go straight to "
                "ClickHouse from the web process and there is nothing to drain."
            )
        with exit_on_configuration_error():
            if settings.STARTUP_CHECKS:
                assert_dependencies_reachable()
        runner = DrainRunner(options["consumer"])
        if options["metrics_port"] is not None:
            serve_metrics(port=options["metrics_port"], address=options["metrics_address"])
            self.stdout.write(
                f"drain: metrics on http://{options['metrics_address']}:"
                f"{options['metrics_port']}/metrics"
            )

        def stop(signum: int, frame: Any) -> None:
            self.stdout.write(f"drain: signal {signum}, finishing the current batches")
            runner.stop_event.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        runner.start()
        self.stdout.write(f"drain: running {', '.join(spec.name for spec in runner.specs)}")
        while not runner.stop_event.wait(0.5):
            pass
        runner.stop()
        self.stdout.write("drain: stopped")
