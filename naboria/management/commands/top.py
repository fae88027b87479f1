"""``python manage.py top``: a live terminal dashboard of an installation (docs/operations.md,
"A live dashboard: manage.py top").

It reads the Prometheus metrics of one or more roles (``--url [ROLE=]URL``, repeatable; default
the web role at http://127.0.0.1:8000/metrics) twice per frame and shows the rates between the
reads (naboria.management.top). Realtime visitors per site come from the realtime report's
query through this installation's settings (``--visitors local``, the default without
``--url``) or from the roles' ``naboria_realtime_visitors`` gauge (``--visitors metrics``, the
default with ``--url``, where a remote installation's ClickHouse is not reachable, and with the
embedded ClickHouse, which the web process holds).

On a terminal the screen refreshes every ``--interval`` seconds until Ctrl-C; ``--once``, or
output that is not a terminal, prints frames as plain text (``--once``: one frame, from two
reads ``--interval`` seconds apart).
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.console import Console
from rich.live import Live

from analytics.reports.traffic import realtime_visitors_by_site
from naboria.management.top import (
    Frame,
    Sample,
    Source,
    make_frame,
    read_all,
    render_rich,
    render_text,
)
from sites.selectors import site_names_by_public_id

DEFAULT_URL = "web=http://127.0.0.1:8000/metrics"


class Command(BaseCommand):
    help = "Show a live dashboard of events, buffers, Kafka lag, the drain and ClickHouse."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--url",
            action="append",
            metavar="[ROLE=]URL",
            help="A role's /metrics to read (repeatable: web, ingest, drain...); "
            f"default {DEFAULT_URL}.",
        )
        parser.add_argument(
            "--token",
            default=None,
            help="METRICS_TOKEN of the installation read (default: this one's METRICS_TOKEN).",
        )
        parser.add_argument(
            "--visitors",
            choices=("local", "metrics"),
            help="Where realtime visitors come from: this installation's ClickHouse (local, the "
            "default without --url) or the roles' naboria_realtime_visitors (metrics, the "
            "default with --url or an embedded ClickHouse).",
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=1.0,
            help="Seconds between frames, and between the two reads of --once (default 1).",
        )
        parser.add_argument(
            "--once",
            action="store_true",
            help="Print one frame as plain text and exit (for scripts and tests).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            sources = [Source.parse(value) for value in options["url"] or [DEFAULT_URL]]
        except ValueError as error:
            raise CommandError(f"--url: {error}") from None
        if not 0.1 <= options["interval"] <= 3600:
            raise CommandError("--interval: between 0.1 and 3600 seconds")
        token = settings.METRICS_TOKEN if options["token"] is None else options["token"]
        # The embedded ClickHouse (chdb) is a folder the web process holds: not opened here
        # unless asked (--visitors local then reports the error of a folder in use).
        embedded = settings.CLICKHOUSE_URL.startswith("chdb:")
        default = "metrics" if options["url"] or embedded else "local"
        local = (options["visitors"] or default) == "local"
        interval = options["interval"]

        def frame(before: list[Sample]) -> tuple[Frame, list[Sample]]:
            after = read_all(sources, token=token)
            visitors, error, names = _local_visitors() if local else (None, "", {})
            return make_frame(
                before, after, visitors=visitors, visitors_error=error, site_names=names
            ), after

        before = read_all(sources, token=token)
        try:
            if options["once"] or not self.stdout.isatty():
                while True:
                    time.sleep(interval)
                    shown, before = frame(before)
                    self.stdout.write(render_text(shown), ending="")
                    if options["once"]:
                        return
                    self.stdout.write("")
            time.sleep(min(interval, 1.0))  # the first frame sooner on a slow refresh
            shown, before = frame(before)
            with Live(
                render_rich(shown), console=Console(), screen=True, auto_refresh=False
            ) as live:
                while True:
                    time.sleep(interval)
                    shown, before = frame(before)
                    live.update(render_rich(shown), refresh=True)
        except KeyboardInterrupt:
            pass  # Ctrl-C is how a watching operator leaves


def _local_visitors() -> tuple[dict[str, int] | None, str, dict[str, str]]:
    """The realtime report's visitors per site read through this installation's settings,
    with the sites' names; an error instead when ClickHouse or the database cannot be read."""
    try:
        visitors = realtime_visitors_by_site()
        return visitors, "", site_names_by_public_id(public_ids=visitors)
    except Exception as error:  # shown in the frame; the other numbers are still worth seeing
        return None, f"{type(error).__name__}: {error}".splitlines()[0][:200], {}
